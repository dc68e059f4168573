/** External disk snapshots: the overlay bytes against qemu-img, the pure plans, and a real QEMU (TCG) guest writing while snapshots are taken, reverted and merged. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';
import { qcow2Overlay } from '../image/index.js';
import { planDiskDetach, planSnapshotCreate, planSnapshotMerge } from '../plan/index.js';
import { DiskSchema } from '../spec/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import type { QmpConn } from './ports.js';
import { createSnapshot } from './snapshot.js';
import { deleteSnapshot } from './snapshot-merge.js';
import { DiskDir, removeFiles } from './snapshot-dir.js';
import type { TeardownDeps } from './teardown.js';
import { leftovers, qemuFiles, testEnv, vmName, waitForText } from './testing.js';

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('qcow2Overlay: qemu-img finds no error, reads the size, backing name and format, and writes through it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-overlay-'));
  try {
    qemuImg('create', '-q', '-f', 'raw', join(dir, 'base.raw'), '10M');
    for (const size of [10 << 20, 3 * 2 ** 40]) {
      const f = join(dir, `o-${size}.qcow2`);
      writeFileSync(f, qcow2Overlay({ virtualSize: size, backing: 'base.raw', backingFormat: 'raw' }));
      qemuImg('check', '-q', f);
      const i = JSON.parse(qemuImg('info', '--output=json', f)) as Record<string, unknown>;
      assert.deepEqual([i['virtual-size'], i['backing-filename'], i['backing-filename-format'], i['cluster-size']], [size, 'base.raw', 'raw', 65536]);
    }
    const f = join(dir, `o-${10 << 20}.qcow2`);
    spawnSync('qemu-io', ['-c', 'write -P 0x5a 1M 64k', f]);
    qemuImg('check', '-q', f);
    assert.throws(() => qcow2Overlay({ virtualSize: 1000, backing: 'b', backingFormat: 'raw' }), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DiskDir: files are made and removed only in the directory opened and identified; a swapped directory, a symlink name or another file is refused', () => {
  const root = mkdtempSync(join(tmpdir(), 'warden-snapdir-'));
  try {
    const D = join(root, 'd');
    const T = join(root, 't');
    mkdirSync(D);
    mkdirSync(T, { mode: 0o700 });
    writeFileSync(join(D, 'top.qcow2'), 'top');
    writeFileSync(join(T, 'top.qcow2'), 'lure');
    writeFileSync(join(T, 'victim'), 'secret', { mode: 0o600 });
    const top = lstatSync(join(D, 'top.qcow2'));
    const dir = DiskDir.of('vm', join(D, 'top.qcow2'), top);
    const id = { dev: dir.id.dev, ino: dir.id.ino };
    symlinkSync(join(T, 'victim'), join(D, 'link'));
    assert.throws(() => dir.create('link'), (e: Error & { code?: string }) => e.code === 'EEXIST' || e.code === 'ELOOP', 'a symlink name is never created through');
    assert.throws(() => dir.create('top.qcow2'), (e: Error & { code?: string }) => e.code === 'EEXIST');
    assert.throws(() => dir.create('../t/x'), RangeError);
    // The directory swapped for a symlink to T while held: the fd still makes the file in D.
    renameSync(D, `${D}.real`);
    symlinkSync(T, D);
    const fd = dir.create('new.qcow2');
    writeFileSync(fd, 'made');
    closeSync(fd);
    assert.equal(lstatSync(join(`${D}.real`, 'new.qcow2')).mode & 0o7777, 0o600);
    assert.ok(!existsSync(join(T, 'new.qcow2')));
    dir.unlink('new.qcow2');
    assert.ok(!existsSync(join(`${D}.real`, 'new.qcow2')));
    dir.close();
    // Opened again by name now: neither its recorded identity nor the layer it must hold is there.
    assert.throws(() => DiskDir.open('vm', D, id), (e: Error & { code?: string }) => e.code === 'IMAGE_CHANGED');
    assert.throws(() => DiskDir.of('vm', join(D, 'top.qcow2'), top), (e: Error & { code?: string }) => e.code === 'IMAGE_CHANGED');
    assert.deepEqual(removeFiles('vm', [join(D, 'victim')], { [D]: id }), [join(D, 'victim')], 'not removed: another directory');
    assert.deepEqual(removeFiles('vm', [join(D, 'victim')], undefined, new Map([[join(D, 'victim'), { dev: top.dev, ino: top.ino }]])), [join(D, 'victim')], 'not removed: another file');
    assert.deepEqual(removeFiles('vm', [join(D, 'victim')], undefined), [join(D, 'victim')], 'not removed: nothing identifies it');
    assert.equal(readFileSync(join(T, 'victim'), 'utf8'), 'secret');
    unlinkSync(D);
    renameSync(`${D}.real`, D);
    assert.deepEqual(removeFiles('vm', [join(D, 'top.qcow2'), join(D, 'gone')], { [D]: id }), [], 'in its own directory: removed (a missing file is fine)');
    assert.ok(!existsSync(join(D, 'top.qcow2')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('planSnapshotCreate / planSnapshotMerge: fresh fdsets, backing null, one transaction; merge reopens the base rw on its own fdset', () => {
  const disk = DiskSchema.parse({ name: 'root', image: '/d/top.qcow2', format: 'qcow2' });
  const top = { path: '/d/top.qcow2', format: 'qcow2', node: 'root-0-fmt', file: 'root-0-file', fdset: 2 };
  const p = planSnapshotCreate([{ disk, top, path: '/d/vm-root.s1.qcow2', tag: 's1' }], [1, 2, 5]);
  assert.deepEqual(p.fds, [{ name: 'disk-root-s1', path: '/d/vm-root.s1.qcow2', flags: ['O_RDWR'], fdset: 6 }]);
  assert.deepEqual(p.steps.map((s) => s.command), ['add-fd', 'blockdev-add', 'blockdev-add']);
  assert.equal(p.steps[2]!.args['backing'], null, 'QEMU follows no name in the header');
  assert.deepEqual(p.transaction.args, { actions: [{ type: 'blockdev-snapshot', data: { node: 'root-0-fmt', overlay: 'root-s1-fmt' } }] });
  assert.deepEqual(planDiskDetach(p.steps).map((u) => u.command), ['blockdev-del', 'blockdev-del', 'remove-fd']);
  const chain = [p.layers['root']!, top, { path: '/d/base.qcow2', format: 'qcow2', node: 'root-1-fmt', file: 'root-1-file', fdset: 1 }];
  const active = planSnapshotMerge({ disk, chain, base: 1, backingName: '', jobId: 'commit-root', baseReadOnly: true });
  assert.equal(active.active, true);
  assert.deepEqual(active.fd, { name: 'root-0-fmt-rw', path: '/d/top.qcow2', flags: ['O_RDWR'], fdset: 2 });
  assert.equal((active.prepare[1]!.args['options'] as Array<Record<string, unknown>>)[1]!['backing'], 'root-1-fmt');
  assert.deepEqual(active.commit.args, { 'job-id': 'commit-root', device: 'root-s1-fmt', 'base-node': 'root-0-fmt', 'auto-finalize': true, 'auto-dismiss': false });
  assert.deepEqual(active.release.map((r) => `${r.command} ${String(r.args['node-name'] ?? r.args['fdset-id'])}`), ['blockdev-del root-s1-fmt', 'blockdev-del root-s1-file', 'remove-fd 6']);
  const inner = planSnapshotMerge({ disk, chain, base: 2, backingName: 'base.qcow2', jobId: 'commit-root', baseReadOnly: true });
  assert.deepEqual(planSnapshotMerge({ disk, chain, base: 1, backingName: '', jobId: 'c', baseReadOnly: false }).prepare.map((s) => s.command), ['blockdev-reopen'], 'no second open file of an image QEMU writes');
  assert.deepEqual([inner.active, inner.commit.args['top-node'], inner.commit.args['backing-file']], [false, 'root-0-fmt', 'base.qcow2'], 'the header above names the base');
});

/** Paths QEMU (pid) holds open. */
/** Runs a shell line on the guest's console and waits for its end marker (computed by the guest, so the echoed command does not match). */
async function guest(sock: Socket, log: string, line: string, tag: string): Promise<void> {
  const n = Math.floor(Math.random() * 1e6);
  sock.write(`${line}\necho "<${tag}-$((${n}+1))>"\n`);
  await waitForText(log, `<${tag}-${n + 1}>`, 90_000);
}

/** The first sector of /dev/vda (a marker) and the counter at sector 8, as the guest reads them. */
async function readDisk(sock: Socket, log: string, tag: string): Promise<{ marker: string; counter: number }> {
  const n = Math.floor(Math.random() * 1e6);
  sock.write(`sync; echo 3 > /proc/sys/vm/drop_caches; echo "RD${tag}-$((${n}+1)) M=$(head -c 24 /dev/vda | tr -d '\\000\\n') C=$(dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | tr -d '\\000\\n')"\n`);
  const text = await waitForText(log, `RD${tag}-${n + 1} `, 90_000);
  const m = new RegExp(`RD${tag}-${n + 1} M=(\\S*) C=(\\S*)`).exec(text);
  assert.ok(m !== null, `no disk read in: ${text.slice(-500)}`);
  return { marker: m[1]!, counter: Number(/CNT-(\d+)/.exec(m[2]!)?.[1] ?? -1) };
}

async function consoleOf(path: string, t: { after(fn: () => void): void }): Promise<Socket> {
  const sock = createConnection({ path });
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => undefined);
  t.after(() => sock.destroy());
  return sock;
}

const WRITE = (text: string): string => `echo ${text} | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync`;

test('snapshots of a running guest that writes: revert sees the old data, delete merges the layer while it runs, a killed create leaves nothing', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 420_000,
}, async (t) => {
  const env = testEnv('warden-snapshot-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const name = vmName('wdv-snap');
  await m.create(env.specFile({ name }));
  let pid = (await m.start(name)).record.run!.qemu.pid;
  const log = m.store.paths(name).serialLog;
  await waitForText(log, GUEST_READY_LINE, 90_000);
  let sock = await consoleOf(m.store.paths(name).serialSocket, t);
  const A = `SNAPA${process.pid}`;
  await guest(sock, log, WRITE(A), 'wa');
  // The guest writes a counter at sector 8 all the while.
  await guest(sock, log, '(n=0; while :; do n=$((n+1)); echo CNT-$n | dd of=/dev/vda bs=512 seek=8 count=1 conv=sync 2>/dev/null; sync; done) &', 'loop');
  const before = await readDisk(sock, log, 'r0');
  assert.ok(before.counter > 0, 'the writer runs');

  const s1 = await m.snapshotCreate(name, { snap: 's1' });
  const after = await readDisk(sock, log, 'r1');
  const o1 = join(env.dir, `${name}-root.s1.qcow2`);
  assert.deepEqual([s1.snapshot.name, s1.snapshot.disks[0]!.base, s1.snapshot.disks[0]!.overlay], ['s1', env.overlay, o1]);
  assert.deepEqual(s1.steps, ['add-fd', 'blockdev-add', 'blockdev-add', 'transaction']);
  let rec = await m.store.read(name);
  assert.equal((rec.spec['disks'] as Array<{ image: string }>)[0]!.image, o1, 'the spec follows the chain');
  assert.ok(qemuFiles(pid).includes(o1), 'QEMU holds the overlay (by fd)');
  assert.ok(!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(o1));
  assert.deepEqual(rec.disks?.filter((c) => c.writable).map((c) => c.path), [o1], 'only the overlay is written now');
  const B = `SNAPB${process.pid}`;
  await guest(sock, log, WRITE(B), 'wb');
  assert.equal((await readDisk(sock, log, 'r2')).marker, B);
  assert.deepEqual((await m.snapshotList(name)).map((s) => [s.name, s.memory, s.current]), [['s1', false, true]]);

  // Revert: a fresh boot on a fresh overlay over the frozen layer.
  sock.destroy();
  const mark = readFileSync(log, 'latin1').length;
  const rv = await m.snapshotRevert(name, 's1');
  assert.equal(rv.record.phase, 'running');
  pid = rv.record.run!.qemu.pid;
  const r1 = join(env.dir, `${name}-root.s1.r1.qcow2`);
  assert.equal((rv.record.spec['disks'] as Array<{ image: string }>)[0]!.image, r1);
  assert.ok(!existsSync(o1), 'the abandoned layer is removed');
  for (let i = 0; i < 900 && !readFileSync(log, 'latin1').slice(mark).includes(GUEST_READY_LINE); i++) await new Promise((r) => setTimeout(r, 100));
  sock = await consoleOf(m.store.paths(name).serialSocket, t);
  const old = await readDisk(sock, log, 'r3');
  assert.equal(old.marker, A, 'the guest sees the data of the snapshot, not what it wrote after');
  assert.ok(old.counter >= before.counter && old.counter <= after.counter, `the counter is one written before the snapshot was complete (${before.counter} <= ${old.counter} <= ${after.counter})`);

  // Delete while running: s2's layer (active) merges into the revert overlay; s1's layer into the boot-time base (reopened rw).
  const s2 = await m.snapshotCreate(name, {});
  assert.equal(s2.snapshot.name, 'snap2');
  const o2 = s2.snapshot.disks[0]!.overlay;
  const Cm = `SNAPC${process.pid}`;
  await guest(sock, log, WRITE(Cm), 'wc');
  const d2 = await m.snapshotDelete(name, 'snap2');
  assert.deepEqual(d2.steps, ['blockdev-reopen', 'block-commit', 'job-complete', 'blockdev-del', 'blockdev-del', 'remove-fd'], 'the base is written by QEMU already: no second fd');
  assert.ok(!existsSync(o2) && !qemuFiles(pid).includes(o2), 'the merged layer is gone, and QEMU holds no fd of it');
  assert.equal((await m.store.read(name)).spec['disks'] !== undefined && ((await m.store.read(name)).spec['disks'] as Array<{ image: string }>)[0]!.image, r1, 'the chain is one shorter');
  assert.equal((await readDisk(sock, log, 'r4')).marker, Cm, 'the data written after the snapshot is intact');
  assert.deepEqual((await m.snapshotDelete(name, 's1')).steps.slice(0, 2), ['add-fd', 'blockdev-reopen'], 'a base opened read-only at start gets a read-write fd in its fdset');
  rec = await m.store.read(name);
  assert.equal((rec.spec['disks'] as Array<{ image: string }>)[0]!.image, env.overlay, 'back to the original disk');
  assert.deepEqual([rec.snapshots?.list, rec.snapshots?.owned], [[], []]);
  assert.ok(!existsSync(r1) && !qemuFiles(pid).includes(r1));
  assert.deepEqual(rec.disks?.filter((c) => c.writable).map((c) => c.path), [env.overlay]);
  assert.equal((await readDisk(sock, log, 'r5')).marker, Cm, 'merged into the original disk');

  // A create killed before its transaction: the next snapshot command undoes it all.
  const d: TeardownDeps = { fs: m.fs, store: m.store, backends: (m as unknown as { o: { backends: TeardownDeps['backends'] } }).o.backends, now: () => new Date().toISOString() };
  const conn = await d.backends.qmpConnect(m.store.paths(name).qmpSocket, 5000);
  let adds = 0;
  const dying: QmpConn = {
    execute: async (c, args, to, fds) => {
      const r = await conn.execute(c, args, to, fds);
      if (c === 'blockdev-add' && ++adds === 2) return new Promise(() => undefined); // the process "died" here
      return r;
    },
    close: () => conn.close(),
  };
  void createSnapshot(d, await m.store.read(name), dying, { snap: 'killed' });
  for (let i = 0; i < 200 && adds < 2; i++) await new Promise((r) => setTimeout(r, 50));
  await conn.close();
  const half = join(env.dir, `${name}-root.killed.qcow2`);
  assert.ok(existsSync(half) && qemuFiles(pid).includes(half), 'the half create left a file QEMU holds');
  assert.equal((await m.store.read(name)).snapshots?.op?.kind, 'create');
  await assert.rejects(m.snapshotDelete(name, 'nothing'), (e: Error & { code?: string }) => e.code === 'VM_SNAPSHOT_NOT_FOUND');
  rec = await m.store.read(name);
  assert.equal(rec.snapshots?.op, undefined);
  assert.ok(!existsSync(half) && !qemuFiles(pid).includes(half), 'file removed, QEMU holds nothing of it');
  const nodes = (await m.qmp(name, 'query-named-block-nodes')) as Array<{ 'node-name': string }>;
  assert.deepEqual(nodes.map((x) => x['node-name']).filter((x) => !/^root-[0-9]+-(fmt|file)$/.test(x)), [], 'no half-added node');
  assert.equal((rec.spec['disks'] as Array<{ image: string }>)[0]!.image, env.overlay);

  // A delete killed once QEMU's job is done and dismissed: running delete again does not commit a second time, it finishes.
  const k2 = (await m.snapshotCreate(name, { snap: 'k2' })).snapshot.disks[0]!.overlay;
  const conn2 = await d.backends.qmpConnect(m.store.paths(name).qmpSocket, 5000);
  let dismissed = false;
  const dying2: QmpConn = {
    execute: async (c, args, to, fds) => {
      const r = await conn2.execute(c, args, to, fds);
      if (c === 'job-dismiss') { dismissed = true; return new Promise(() => undefined); }
      return r;
    },
    close: () => conn2.close(),
  };
  void deleteSnapshot(d, await m.store.read(name), dying2, 'k2');
  for (let i = 0; i < 400 && !dismissed; i++) await new Promise((r) => setTimeout(r, 50));
  await conn2.close();
  assert.ok(dismissed, 'the half delete got as far as job-dismiss');
  assert.deepEqual((await m.snapshotList(name)).map((s) => [s.name, s.deleting]), [['k2', true]]);
  const fin = await m.snapshotDelete(name, 'k2');
  assert.ok(!fin.steps.includes('block-commit'), `no second commit: ${fin.steps.join(',')}`);
  rec = await m.store.read(name);
  assert.deepEqual([(rec.spec['disks'] as Array<{ image: string }>)[0]!.image, rec.snapshots?.list, existsSync(k2), qemuFiles(pid).includes(k2)], [env.overlay, [], false, false]);
  assert.equal((await readDisk(sock, log, 'r6')).marker, Cm, 'the data is intact');

  sock.destroy();
  await m.kill(name);
  qemuImg('check', '-q', env.overlay);
  // The in-process "killed" create still holds its fd of the removed file and of the disk's directory, the "killed" delete
  // its read-write fd of the base (a dead process would not); the other tests check that a finished command leaves none.
  const hung = [`this process: ${env.dir}`, `this process: ${env.overlay}`];
  assert.deepEqual(leftovers(name, env.stateRoot).filter((l) => !l.includes('.killed.qcow2') && !hung.some((h) => l.endsWith(h))), []);
});

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

const ticks = (s: string): number[] => [...s.matchAll(/WARDEN-TICK (\d+)/g)].map((m) => Number(m[1]));

test('warden snapshot create --memory, revert: the guest continues from the snapshot (tick counter, no boot); a stopped VM snapshots its disks; delete of a stopped VM is refused', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-snapshot-mem-');
  const name = vmName('wdv-snapm');
  const state = ['--state-dir', env.stateRoot];
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  let io = capture();
  assert.equal(await run(['create', env.specFile({ name, cmdline: 'warden.tick=1' }), ...state], io), 0, io.stderr);
  assert.equal(await run(['start', name, ...state], io = capture()), 0, io.stderr);
  const log = m.store.paths(name).serialLog;
  await waitForText(log, 'WARDEN-TICK 3', 90_000);
  assert.equal(await run(['snapshot', 'create', name, 'live', '--memory', '--json', ...state], io = capture()), 0, io.stderr);
  const r = JSON.parse(io.stdout) as { snapshot: { memory: boolean; bytes: number }; migration: { status: string }; steps: string[] };
  assert.deepEqual([r.snapshot.memory, r.migration.status], [true, 'completed']);
  assert.deepEqual(r.steps, ['stop', 'add-fd', 'blockdev-add', 'blockdev-add', 'transaction']);
  const at = Math.max(...ticks(readFileSync(log, 'latin1')));
  assert.equal((await m.reconcile(name, true)).phase, 'running', 'the guest runs on after the snapshot');
  await waitForText(log, `WARDEN-TICK ${at + 3}`, 60_000);
  assert.equal(await run(['snapshot', 'list', name, ...state], io = capture()), 0, io.stderr);
  assert.match(io.stdout, /^NAME +CREATED +VM WAS +MEMORY +SIZE +IN CHAIN +DISKS\nlive +\S+ +running +yes +[0-9.]+ MiB +yes +root\n$/);

  const before = readFileSync(log, 'latin1');
  assert.equal(await run(['snapshot', 'revert', name, 'live', ...state], io = capture()), 0, io.stderr);
  assert.match(io.stdout, /reverted to snapshot live \(memory restored\); it is running/);
  const after = (await waitForText(log, 'WARDEN-TICK', 60_000).then(async () => {
    for (let i = 0; i < 600 && ticks(readFileSync(log, 'latin1').slice(before.length)).length < 2; i++) await new Promise((res) => setTimeout(res, 100));
    return readFileSync(log, 'latin1');
  })).slice(before.length);
  assert.ok(!after.includes(GUEST_READY_LINE), 'no new boot');
  const first = ticks(after)[0]!;
  assert.ok(first >= 4 && first <= at + 1, `the counter continues from the snapshot (TICK ${first}; ticks 1-3 were before it, ${at} the last seen after it)`);

  // Stopped: the disks only; the next start opens the new chain.
  assert.equal(await run(['kill', name, ...state], io = capture()), 0, io.stderr);
  assert.equal(await run(['snapshot', 'create', name, 'cold', '--json', ...state], io = capture()), 0, io.stderr);
  const cold = JSON.parse(io.stdout) as { snapshot: { disks: Array<{ overlay: string }> }; steps: string[] };
  assert.deepEqual(cold.steps, []);
  const overlay = cold.snapshot.disks[0]!.overlay;
  assert.equal(await run(['snapshot', 'create', name, 'cold', ...state], io = capture()), 4, 'the name is taken');
  assert.match(io.stderr, /VM_SNAPSHOT_EXISTS/);
  // A disk-only snapshot of a stopped VM: the revert leaves it stopped, on a fresh overlay.
  assert.equal(await run(['snapshot', 'revert', name, 'cold', '--json', ...state], io = capture()), 0, io.stderr);
  const reverted = JSON.parse(io.stdout) as { record: { phase: string; spec: { disks: Array<{ image: string }> } } };
  const fresh = reverted.record.spec.disks[0]!.image;
  assert.deepEqual([reverted.record.phase, fresh.endsWith('.cold.r1.qcow2'), existsSync(overlay)], ['stopped', true, false]);
  const pid = (await m.start(name)).record.run!.qemu.pid;
  assert.ok(qemuFiles(pid).includes(fresh), 'the next start opens the overlay chain');
  assert.ok((await m.reconcile(name)).disks?.some((c) => c.path === fresh && c.writable), 'and claims it');
  assert.equal(await run(['snapshot', 'delete', name, 'cold', ...state], io = capture()), 0, io.stderr);
  assert.ok(!existsSync(fresh) && !qemuFiles(pid).includes(fresh));
  assert.equal(await run(['snapshot', 'revert', name, 'nope', ...state], io = capture()), 5);
  assert.match(io.stderr, /VM_SNAPSHOT_NOT_FOUND/);
  // Delete of a stopped VM's snapshot: its QEMU, started paused in its jail, merges; it is stopped again.
  await m.kill(name);
  const top = ((await m.store.read(name)).spec['disks'] as Array<{ image: string }>)[0]!.image;
  assert.equal(await run(['snapshot', 'create', name, 'cold2', '--json', ...state], io = capture()), 0, io.stderr);
  const cold2 = (JSON.parse(io.stdout) as { snapshot: { disks: Array<{ overlay: string }> } }).snapshot.disks[0]!.overlay;
  const boots = readFileSync(log, 'latin1').split(GUEST_READY_LINE).length;
  assert.equal(await run(['snapshot', 'delete', name, 'cold2', '--json', ...state], io = capture()), 0, io.stderr);
  assert.deepEqual((JSON.parse(io.stdout) as { steps: string[] }).steps, ['add-fd', 'blockdev-reopen', 'block-commit', 'job-complete', 'blockdev-del', 'blockdev-del', 'remove-fd']);
  const after2 = await m.reconcile(name);
  assert.deepEqual([after2.phase, (after2.spec['disks'] as Array<{ image: string }>)[0]!.image, existsSync(cold2)], ['stopped', top, false]);
  assert.equal(readFileSync(log, 'latin1').split(GUEST_READY_LINE).length, boots, 'the guest never ran');
  qemuImg('check', '-q', top);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('merges in any order: inner layers (block-commit with backing-file) and the active one, bases opened read-only at start; the chain on disk is sound and starts again', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 240_000,
}, async (t) => {
  const env = testEnv('warden-snapshot-order-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-snapo');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  const spec = env.specFile({ name });
  writeFileSync(spec, JSON.stringify({ ...(JSON.parse(readFileSync(spec, 'utf8')) as object), hotplugSlots: 1 }));
  await m.create(spec);
  await m.snapshotCreate(name, { snap: 'x' }); // stopped: at start, x's base is a read-only backing layer
  const pid = (await m.start(name)).record.run!.qemu.pid;
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 90_000);
  // A disk hot-plugged into this run is refused (its detach must find the nodes its attach made).
  const extra = join(env.dir, 'extra.raw');
  writeFileSync(extra, Buffer.alloc(1 << 20));
  await m.attachDisk(name, { name: 'extra', image: extra, format: 'raw' });
  await assert.rejects(m.snapshotCreate(name, { snap: 'hp' }), (e: Error & { code?: string }) => e.code === 'VM_SNAPSHOT_FAILED' && /hot-plugged into this run/.test(e.message));
  assert.deepEqual([(await m.store.read(name)).snapshots?.list.map((s) => s.name), existsSync(join(env.dir, `${name}-root.hp.qcow2`))], [['x'], false], 'nothing was made');
  assert.equal((await m.detachDisk(name, 'extra')).state, 'detached');
  await m.snapshotCreate(name, { snap: 'y' });
  await m.snapshotCreate(name, { snap: 'z' });
  const files = (await m.snapshotList(name)).map((s) => s.disks[0]!.overlay);
  const steps = async (snap: string): Promise<string> => (await m.snapshotDelete(name, snap)).steps.join(',');
  assert.equal(await steps('y'), 'blockdev-reopen,block-commit,blockdev-del,blockdev-del,remove-fd', 'inner, base written by QEMU already');
  assert.equal(await steps('x'), 'add-fd,blockdev-reopen,block-commit,blockdev-del,blockdev-del,remove-fd', 'inner, base read-only since start');
  assert.equal(await steps('z'), 'blockdev-reopen,block-commit,job-complete,blockdev-del,blockdev-del,remove-fd', 'active');
  await m.snapshotCreate(name, { snap: 'w' });
  assert.match(await steps('w'), /^blockdev-reopen,block-commit,job-complete/, 'and again on the same base (no stale open file locks it)');
  const rec = await m.store.read(name);
  assert.deepEqual([(rec.spec['disks'] as Array<{ image: string }>)[0]!.image, rec.snapshots?.list, rec.snapshots?.owned], [env.overlay, [], []]);
  for (const f of files) assert.ok(!existsSync(f) && !qemuFiles(pid).includes(f), `${f} is merged and gone`);
  await m.kill(name);
  qemuImg('check', '-q', env.overlay);
  const info = JSON.parse(qemuImg('info', '--output=json', env.overlay)) as Record<string, unknown>;
  assert.equal(info['full-backing-filename'], env.base);
  await m.start(name);
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('a disk directory swapped for a symlink to another directory after a snapshot: delete, revert and create are refused, nothing in that directory is created, opened for writing or removed, the VM runs on, its record is as it was', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-snapshot-swap-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-snaps');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  const D = join(env.dir, 'disks');
  mkdirSync(D, { mode: 0o755 });
  qemuImg('create', '-q', '-f', 'qcow2', join(D, 'base.qcow2'), '64M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(D, 'disk.qcow2'));
  await m.create(env.specFile({ name, disk: join(D, 'disk.qcow2') }));
  const pid = (await m.start(name)).record.run!.qemu.pid;
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 90_000);
  const s1 = (await m.snapshotCreate(name, { snap: 's1' })).snapshot.disks[0]!.overlay;
  assert.equal(s1, join(D, `${name}-root.s1.qcow2`));
  // Another directory (root's, 0700): a 0600 root-owned image of the base's name, and a top of the overlay's name over it, so every walk through the swapped path passes.
  const T = join(env.dir, 'other');
  mkdirSync(T, { mode: 0o700 });
  qemuImg('create', '-q', '-f', 'qcow2', join(T, 'disk.qcow2'), '64M');
  chmodSync(join(T, 'disk.qcow2'), 0o600);
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'disk.qcow2', '-F', 'qcow2', join(T, `${name}-root.s1.qcow2`));
  const look = (): unknown => [lstatSync(T).mtimeMs, ...readdirSync(T).sort().map((f) => { const st = lstatSync(join(T, f)); return [f, st.mtimeMs, st.ctimeMs, st.size, st.mode, st.uid, readFileSync(join(T, f)).toString('base64')]; })];
  const seen = look();
  const rec0 = await m.store.read(name);
  const held = (r: typeof rec0): unknown => [r.phase, r.run?.qemu.pid, r.spec, r.disks, r.snapshots];
  renameSync(D, `${D}.real`);
  symlinkSync(T, D);
  try {
    const refused = (e: Error & { code?: string }): boolean => e.code === 'IMAGE_CHANGED';
    await assert.rejects(m.snapshotDelete(name, 's1'), refused, 'delete: the base is not the layer the run holds');
    await assert.rejects(m.snapshotRevert(name, 's1'), refused, 'revert: the directory is not the one the snapshot was made in');
    await assert.rejects(m.snapshotCreate(name, { snap: 's2' }), refused, 'create: the top there is not the one the run holds');
  } finally {
    unlinkSync(D);
    renameSync(`${D}.real`, D);
  }
  assert.deepEqual(look(), seen, 'the other directory: same files, same bytes, same times');
  assert.ok(!qemuFiles(pid).some((f) => f.startsWith(`${T}/`)), 'QEMU was given nothing of it');
  const rec1 = await m.reconcile(name);
  assert.deepEqual(held(rec1), held(rec0), 'the VM runs on, its record as it was');
  // With the directory back, the snapshot deletes as usual.
  assert.match((await m.snapshotDelete(name, 's1')).steps.join(','), /block-commit,job-complete/);
  assert.deepEqual([((await m.store.read(name)).spec['disks'] as Array<{ image: string }>)[0]!.image, existsSync(s1)], [join(D, 'disk.qcow2'), false]);
  await m.kill(name);
  qemuImg('check', '-q', join(D, 'disk.qcow2'));
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
