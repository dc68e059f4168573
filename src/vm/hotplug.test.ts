/** Disk hot-plug by fd: the pure plan, and a real QEMU (TCG, machine pc) with the test guest seeing the disk come and go. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';
import { planDiskAttach, planDiskDetach } from '../plan/index.js';
import { DiskSchema } from '../spec/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { attachDisk } from './hotplug.js';
import { openManager } from './open.js';
import type { QmpConn } from './ports.js';
import type { TeardownDeps } from './teardown.js';
import { guestSays, leftovers, openConsole, qemuFiles, testEnv, vmName, waitForText } from './testing.js';

const layer = (path: string, format: string, backing: string | null, backingFormat: string | null, ino: number) => ({
  path, format, backingFilename: backing, backingFormat, encrypted: false, dataFilePath: null, dev: 1, ino,
});

test('planDiskAttach: fds with exact modes after the live fdsets, bottom-up blockdev-add with backing, device_add on a free slot, inverses', () => {
  const disk = DiskSchema.parse({ name: 'data', image: '/d/top.qcow2', format: 'qcow2' });
  const chain = { layers: [layer('/d/top.qcow2', 'qcow2', 'mid.qcow2', 'qcow2', 3), layer('/d/mid.qcow2', 'qcow2', 'base.raw', 'raw', 2), layer('/d/base.raw', 'raw', null, null, 1)] } as never;
  const p = planDiskAttach(disk, chain, { machine: 'pc', fdsets: [1, 2, 3], pciSlots: [0, 1, 2, 3, 5], freePorts: [], diskNames: ['root'] });
  assert.deepEqual(p.issues, []);
  assert.deepEqual(p.fds.map((f) => [f.path, f.flags.join('|'), f.fdset]), [['/d/base.raw', 'O_RDONLY', 4], ['/d/mid.qcow2', 'O_RDONLY', 5], ['/d/top.qcow2', 'O_RDWR', 6]]);
  assert.deepEqual(p.steps.map((s) => `${s.command} ${String(s.args['node-name'] ?? s.args['fdset-id'] ?? s.args['id'])}`), [
    'add-fd 4', 'add-fd 5', 'add-fd 6',
    'blockdev-add data-2-file', 'blockdev-add data-2-fmt', 'blockdev-add data-1-file', 'blockdev-add data-1-fmt', 'blockdev-add data-0-file', 'blockdev-add data-0-fmt',
    'device_add disk-data']);
  assert.equal(p.steps[6]!.args['backing'], 'data-2-fmt', 'mid layer names the base node explicitly');
  assert.equal(p.steps[7]!.args['filename'], '/dev/fdset/6');
  assert.deepEqual([p.steps[9]!.args['bus'], p.steps[9]!.args['addr'], p.steps[9]!.args['drive']], ['pci.0', '0x4', 'data-0-fmt']);
  assert.deepEqual(planDiskDetach(p.steps).map((u) => u.command), ['device_del', ...Array(6).fill('blockdev-del'), 'remove-fd', 'remove-fd', 'remove-fd']);
  const ro = planDiskAttach({ ...disk, readOnly: true }, chain, { machine: 'pc', fdsets: [], pciSlots: [], freePorts: [], diskNames: [] });
  assert.ok(ro.fds.every((f) => f.flags.join() === 'O_RDONLY') && ro.steps.every((s) => s.args['read-only'] !== false));
  const q35 = planDiskAttach(disk, chain, { machine: 'q35', fdsets: [], pciSlots: [0, 1, 2], freePorts: ['hp1', 'hp2'], diskNames: [] });
  assert.deepEqual([q35.issues, q35.steps.at(-1)!.args['bus'], q35.steps.at(-1)!.args['addr']], [[], 'hp1', '0x0'], 'q35: behind the first empty reserved root port');
  const refused = planDiskAttach(disk, chain, { machine: 'q35', fdsets: [], pciSlots: [], freePorts: [], diskNames: ['data'] });
  assert.deepEqual(refused.issues.map((i) => i.code), ['PLAN_PCI_EXHAUSTED', 'PLAN_DUPLICATE']);
  const scsi = planDiskAttach({ ...disk, bus: 'scsi' }, chain, { machine: 'q35', fdsets: [7], pciSlots: [], freePorts: [], diskNames: [], scsiLuns: [0, 1, 3] });
  assert.deepEqual([scsi.issues, scsi.fds[0]!.fdset, scsi.steps.at(-1)!.args], [[], 8, { driver: 'scsi-hd', bus: 'scsi0.0', channel: 0, 'scsi-id': 0, lun: 2, drive: 'data-0-fmt', id: 'disk-data' }], 'scsi: first free LUN, no PCI slot needed');
  const noCtl = planDiskAttach({ ...disk, bus: 'scsi' }, chain, { machine: 'pc', fdsets: [], pciSlots: [], freePorts: [], diskNames: [] });
  assert.match(noCtl.issues.map((i) => i.message).join(), /no virtio-scsi controller/);
});

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

function img(...args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
}

/** Paths QEMU (pid) holds open. */
/** The guest's block devices, listed on its console between unique markers. */
async function guestBlocks(sock: Socket, log: string, tag: string): Promise<string[]> {
  return (await guestSays(sock, log, `BLK${tag}`, 'ls /sys/block', 60_000)).split(',').filter((x) => x !== '');
}

test('disk attach/detach on a running guest: appears with its data, detach removes it and QEMU\'s fds; the spec follows; a second VM is refused; a killed attach is undone', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-hotplug-');
  const m = openManager({ stateDir: env.stateRoot });
  const side = mkdtempSync(join(tmpdir(), 'warden-hotplug-side-'));
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); rmSync(side, { recursive: true, force: true }); });
  // A 3-layer chain whose bottom (raw) holds the marker the guest must read.
  const base = join(env.dir, 'data-base.raw');
  const marker = `HOTPLUG-DATA-${process.pid}`;
  writeFileSync(base, Buffer.concat([Buffer.from(marker), Buffer.alloc((1 << 20) - marker.length)]));
  const mid = join(env.dir, 'data-mid.qcow2');
  const top = join(env.dir, 'data-top.qcow2');
  img('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', mid);
  img('create', '-q', '-f', 'qcow2', '-b', mid, '-F', 'qcow2', top);
  const specOf = (name: string, disk?: string): string => {
    const file = env.specFile(disk === undefined ? { name } : { name, disk });
    const spec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...spec, machine: 'pc' }));
    return file;
  };
  const a = vmName('wdv-hpa');
  await m.create(specOf(a));
  const rec = (await m.start(a)).record;
  const pid = rec.run!.qemu.pid;
  const log = m.store.paths(a).serialLog;
  await waitForText(log, GUEST_READY_LINE, 90_000);
  const sock = await openConsole(m.store.paths(a).serialSocket, t);
  assert.deepEqual(await guestBlocks(sock, log, 'A'), ['vda']);

  const io = capture();
  const code = await run(['disk', 'attach', a, '--image', top, '--format', 'qcow2', '--name', 'data', '--json', '--state-dir', env.stateRoot], io);
  assert.equal(code, 0, io.stderr);
  assert.equal((JSON.parse(io.stdout) as { state: string }).state, 'attached');
  const held = qemuFiles(pid);
  for (const f of [base, mid, top]) assert.ok(held.includes(f), `QEMU holds ${f}: ${held.join(' ')}`);
  const deadline = Date.now() + 30_000;
  let blocks: string[] = [];
  for (let i = 0; Date.now() < deadline; i++) { blocks = await guestBlocks(sock, log, `B${i}`); if (blocks.includes('vdb')) break; await new Promise((r) => setTimeout(r, 500)); }
  assert.deepEqual(blocks, ['vda', 'vdb'], 'the guest sees the disk appear');
  sock.write('head -c 32 /dev/vdb; echo\n');
  await waitForText(log, `${marker}\x00`.slice(0, marker.length), 20_000);
  assert.equal(readFileSync(log, 'latin1').split(marker).length - 1, 1, 'the marker came from the disk, once');
  const afterAttach = await m.store.read(a);
  assert.ok((afterAttach.spec['disks'] as Array<{ name: string }>).some((d) => d.name === 'data'), 'the stored spec has the disk for the next start');
  assert.equal(afterAttach.disks?.filter((c) => c.writable).length, 2, 'root and data top layers claimed writable');
  const shown = capture();
  assert.equal(await run(['inspect', a, '--state-dir', env.stateRoot], shown), 0, shown.stderr);
  assert.match(shown.stdout, /hot-plugged disk data \(disk-data\) .*data-top\.qcow2: persisted in the spec at /);

  // A second VM asking for the same writable disk is refused; nothing is left in it.
  const b = vmName('wdv-hpb');
  const rootB = join(env.dir, 'root-b.qcow2');
  img('create', '-q', '-f', 'qcow2', '-b', env.base, '-F', 'qcow2', rootB);
  await m.create(specOf(b, rootB));
  const recB = (await m.start(b)).record;
  const io2 = capture();
  assert.equal(await run(['disk', 'attach', b, '--image', top, '--format', 'qcow2', '--name', 'data', '--state-dir', env.stateRoot], io2), 4, io2.stderr);
  assert.match(io2.stderr, /VM_DISK_IN_USE|used by VM|written by VM/);
  const bAfter = await m.store.read(b);
  assert.deepEqual([bAfter.hotplug ?? [], bAfter.disks], [[], recB.disks], 'no entry, no claim added');
  assert.ok(!qemuFiles(recB.run!.qemu.pid).some((f) => f.startsWith(env.dir) && f.includes('data-')), 'B holds none of the files');
  await m.kill(b);

  // Detach: the guest lets go, QEMU drops every fd of the chain, the spec and the claims follow.
  const io3 = capture();
  assert.equal(await run(['disk', 'detach', a, 'data', '--json', '--timeout', '60', '--state-dir', env.stateRoot], io3), 0, io3.stderr);
  assert.equal((JSON.parse(io3.stdout) as { state: string }).state, 'detached');
  assert.deepEqual(qemuFiles(pid).filter((f) => f.includes('data-')), [], 'QEMU holds no fd of the removed files');
  assert.deepEqual(await guestBlocks(sock, log, 'C'), ['vda'], 'the guest sees the disk go');
  const afterDetach = await m.store.read(a);
  assert.ok(!(afterDetach.spec['disks'] as Array<{ name: string }>).some((d) => d.name === 'data'));
  assert.deepEqual(afterDetach.disks, rec.disks, 'the claims are back to the boot disks');

  // A manager "killed" after blockdev-add of the middle layer: the next command undoes it.
  const d = (m as unknown as { d: TeardownDeps }).d;
  const sideTop = join(side, 'side.qcow2');
  const sideBase = join(side, 'side-base.raw');
  writeFileSync(sideBase, Buffer.alloc(1 << 20));
  img('create', '-q', '-f', 'qcow2', '-b', sideBase, '-F', 'raw', sideTop);
  const conn = await d.backends.qmpConnect(m.store.paths(a).qmpSocket, 5000);
  let n = 0;
  const dying: QmpConn = {
    execute: async (c, args, to, fds) => {
      const r = await conn.execute(c, args, to, fds);
      if (c === 'blockdev-add' && ++n === 3) return new Promise(() => undefined); // never returns: the process "died" here
      return r;
    },
    close: () => conn.close(),
  };
  void attachDisk(d, await m.store.read(a), dying, { name: 'side', image: sideTop, format: 'qcow2' });
  for (let i = 0; i < 100 && ((await m.store.read(a)).hotplug ?? []).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 100 && n < 3; i++) await new Promise((r) => setTimeout(r, 50));
  await conn.close();
  const half = await m.store.read(a);
  assert.equal(half.hotplug?.[0]?.state, 'attaching');
  assert.ok(qemuFiles(pid).includes(sideTop), 'the half attach left QEMU holding the file');
  // The next hot-plug command (a detach of something else) recovers first.
  const io4 = capture();
  assert.equal(await run(['disk', 'detach', a, 'nothing', '--state-dir', env.stateRoot], io4), 5, io4.stderr);
  const healed = await m.store.read(a);
  assert.deepEqual([healed.hotplug ?? [], healed.disks], [[], rec.disks]);
  assert.deepEqual(qemuFiles(pid).filter((f) => f.startsWith(side) || f.includes('data-')), [], 'no fd of the half-attached chain');
  const nodes = (await m.qmp(a, 'query-named-block-nodes')) as Array<{ 'node-name': string }>;
  assert.deepEqual(nodes.map((x) => x['node-name']).filter((x) => x.startsWith('side-')), [], 'no half-added block node');
  const fdsets = (await m.qmp(a, 'query-fdsets')) as Array<{ fds: Array<{ opaque?: string }> }>;
  assert.deepEqual(fdsets.flatMap((f) => f.fds.map((x) => x.opaque)).filter((o) => o?.startsWith('disk-side')), [], 'no fdset left');

  // A guest that cannot answer (paused: its vCPUs never see the ACPI eject) holds the disk: the
  // detach ends `removing` (exit 8, recorded), not a hang; once it runs, the next detach finishes.
  const held2 = join(side, 'held.raw');
  writeFileSync(held2, Buffer.alloc(1 << 20));
  assert.equal((await m.attachDisk(a, { name: 'held', image: held2, format: 'raw', liveOnly: true })).state, 'attached');
  await m.pause(a);
  const io5 = capture();
  assert.equal(await run(['disk', 'detach', a, 'held', '--json', '--timeout', '2', '--state-dir', env.stateRoot], io5), 8, io5.stderr);
  const removing = JSON.parse(io5.stdout) as { error: { code: string; context: { state: string } } };
  assert.deepEqual([removing.error.code, removing.error.context.state], ['VM_DEVICE_REMOVING', 'removing']);
  const mid2 = await m.store.read(a);
  assert.equal(mid2.hotplug?.find((e) => e.name === 'held')?.state, 'removing', 'recorded as removing');
  assert.ok(qemuFiles(pid).includes(held2), 'QEMU still holds the file while the guest holds the device');
  const ins = capture();
  assert.equal(await run(['inspect', a, '--json', '--state-dir', env.stateRoot], ins), 0, ins.stderr);
  const hp = (JSON.parse(ins.stdout) as { hotplugged: Array<Record<string, unknown>> }).hotplugged;
  assert.deepEqual(hp.map((x) => [x['kind'], x['name'], x['state'], x['origin'], typeof x['attachedAt'], typeof x['removingSince']]), [['disk', 'held', 'removing', 'live-only', 'string', 'string']]);
  const insText = capture();
  assert.equal(await run(['inspect', a, '--state-dir', env.stateRoot], insText), 0, insText.stderr);
  assert.match(insText.stdout, /hot-plugged disk held \(disk-held\) .*held\.raw: live only at .*REMOVING since/);
  await m.resume(a);
  const io6 = capture();
  assert.equal(await run(['disk', 'detach', a, 'held', '--json', '--timeout', '60', '--state-dir', env.stateRoot], io6), 0, io6.stderr);
  assert.equal((JSON.parse(io6.stdout) as { state: string }).state, 'detached');
  assert.deepEqual([(await m.store.read(a)).hotplug ?? [], qemuFiles(pid).filter((f) => f === held2)], [[], []], 'finished: no entry, no fd');

  // A disk QEMU was started with (pc: on pci.0, hot-unpluggable): its nodes and fdsets come from the run's plan.
  const io7 = capture();
  assert.equal(await run(['disk', 'detach', a, 'root', '--live-only', '--json', '--timeout', '60', '--state-dir', env.stateRoot], io7), 0, io7.stdout);
  assert.equal((JSON.parse(io7.stdout) as { state: string }).state, 'detached');
  assert.deepEqual(qemuFiles(pid).filter((f) => f === env.overlay || f === env.base), [], 'QEMU holds neither layer of the boot disk');
  assert.deepEqual(await guestBlocks(sock, log, 'D'), [], 'the guest sees its boot disk go');
  const noRoot = await m.store.read(a);
  assert.deepEqual([noRoot.disks, noRoot.hotplug ?? []], [[], []], 'its claims are released');
  assert.ok((noRoot.spec['disks'] as Array<{ name: string }>).some((x) => x.name === 'root'), 'live only: the spec keeps it');
  const nodesLeft = (await m.qmp(a, 'query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string }>;
  assert.deepEqual(nodesLeft.map((x) => x['node-name']).filter((x) => x.startsWith('root-')), [], 'no node of it left');
  const io8 = capture();
  assert.equal(await run(['disk', 'detach', a, 'root', '--state-dir', env.stateRoot], io8), 5, 'a second detach: already gone');

  sock.destroy();
  await m.kill(a);
  assert.deepEqual(leftovers(a, env.stateRoot).filter((l) => !l.includes(side)), []);
});

test('q35: a disk hot-plugs behind a reserved root port, a second one is refused (no free port), and an attached disk is there at the next boot', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-hotplug-q35-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const disk = join(env.dir, 'keep.raw');
  const marker = `HOTPLUG-KEEP-${process.pid}`;
  writeFileSync(disk, Buffer.concat([Buffer.from(marker), Buffer.alloc((1 << 20) - marker.length)]));
  const name = vmName('wdv-hpq');
  const file = env.specFile({ name });
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), machine: 'q35', hotplugSlots: 1, scsiController: true }));
  await m.create(file);
  const pid = (await m.start(name)).record.run!.qemu.pid;
  const log = m.store.paths(name).serialLog;
  await waitForText(log, GUEST_READY_LINE, 90_000);
  const sock = await openConsole(m.store.paths(name).serialSocket, t);
  const r = await m.attachDisk(name, { name: 'keep', image: disk, format: 'raw' });
  assert.equal(r.state, 'attached');
  let blocks: string[] = [];
  for (let i = 0; i < 40 && !blocks.includes('vdb'); i++) { blocks = await guestBlocks(sock, log, `Q${i}`); if (!blocks.includes('vdb')) await new Promise((res) => setTimeout(res, 500)); }
  assert.deepEqual(blocks, ['vda', 'vdb'], 'the guest sees the disk behind the root port');
  await assert.rejects(m.attachDisk(name, { name: 'more', image: disk, format: 'raw', readOnly: true }), (e: Error & { code?: string }) => e.code === 'VM_HOTPLUG_FAILED' && /no free hot-plug slot/.test(e.message));
  // No root port left, but a scsi disk goes on the controller planned at boot (scsiController), at LUN 0; QEMU unplugs it
  // without asking the guest. The test guest loads virtio_scsi + sd_mod when the controller is there: it sees an sdX come and go.
  const moreImg = join(env.dir, 'more.raw');
  writeFileSync(moreImg, Buffer.alloc(1 << 20));
  const s = await m.attachDisk(name, { name: 'more', image: moreImg, format: 'raw', readOnly: true, bus: 'scsi' });
  assert.equal(s.state, 'attached');
  assert.ok(qemuFiles(pid).includes(moreImg), 'QEMU holds the scsi disk\'s file');
  assert.equal(await m.qmp(name, 'qom-get', { path: '/machine/peripheral/disk-more', property: 'lun' }), 0);
  assert.equal(((await m.qmp(name, 'qom-list', { path: '/machine/peripheral' })) as Array<{ name: string; type: string }>).find((k) => k.name === 'disk-more')?.type, 'child<scsi-hd>');
  const isSd = (b: string): boolean => /^sd[a-z]+$/.test(b);
  for (let i = 0; i < 40 && !blocks.some(isSd); i++) { blocks = await guestBlocks(sock, log, `S${i}`); if (!blocks.some(isSd)) await new Promise((res) => setTimeout(res, 500)); }
  assert.deepEqual([blocks.filter((b) => !isSd(b)), blocks.filter(isSd).length], [['vda', 'vdb'], 1], `the guest sees the scsi disk (${blocks.join()})`);
  assert.equal((await m.detachDisk(name, 'more', { waitMs: 30_000 })).state, 'detached');
  assert.ok(!qemuFiles(pid).includes(moreImg), 'after detach QEMU holds no fd of it');
  for (let i = 0; i < 40 && blocks.some(isSd); i++) { blocks = await guestBlocks(sock, log, `T${i}`); if (blocks.some(isSd)) await new Promise((res) => setTimeout(res, 500)); }
  assert.deepEqual(blocks, ['vda', 'vdb'], 'the guest sees the scsi disk go');
  // q35's boot disks sit on pcie.0, which takes no hot-unplug: refused by QEMU, nothing recorded.
  const before = await m.store.read(name);
  await assert.rejects(m.detachDisk(name, 'root'), (e: Error & { code?: string }) => e.code === 'VM_HOTPLUG_FAILED' && /refused device_del/.test(e.message));
  assert.deepEqual([(await m.store.read(name)).hotplug, (await m.store.read(name)).disks], [before.hotplug, before.disks]);
  sock.destroy();
  // The stored spec has it: the next start boots with it.
  await m.kill(name);
  const readyBefore = readFileSync(log, 'latin1').split(GUEST_READY_LINE).length - 1;
  const pid2 = (await m.start(name)).record.run!.qemu.pid;
  assert.notEqual(pid2, pid);
  assert.ok(qemuFiles(pid2).includes(disk), 'QEMU started with the attached disk');
  // The serial log keeps the first boot's lines: wait for this boot's ready line, not that one, before typing.
  for (const deadline = Date.now() + 90_000; readFileSync(log, 'latin1').split(GUEST_READY_LINE).length - 1 <= readyBefore;) {
    if (Date.now() > deadline) throw new Error('the guest did not come up again after the restart');
    await new Promise((res) => setTimeout(res, 200));
  }
  const sock2 = await openConsole(m.store.paths(name).serialSocket, t);
  assert.deepEqual(await guestBlocks(sock2, log, 'R'), ['vda', 'vdb'], 'the disk is there at the next boot');
  sock2.destroy();
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
