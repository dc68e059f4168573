/** @module vm/migrate.test: the pure parts of a migration (path map, disk copies, progress lines) and the link's handshake, which must hand QEMU every byte after it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiskCopies, mapPath, parsePathRule, planDiskCopies } from './migrate-disks.js';
import { connectForMigration, isLoopback, listenForMigration, refuseInsecureListen } from './migrate-link.js';
import { describeSample, sampleOf } from './migrate.js';
import { refuseChangedDevices } from './migrate-run.js';
import type { VmRecord } from './record.js';

test('path map: a path equal to or under FROM moves under TO; the first rule wins; others stay', () => {
  const rules = [parsePathRule('/srv/a=/data/b'), parsePathRule('/srv=/x/')];
  assert.equal(mapPath('/srv/a', rules), '/data/b');
  assert.equal(mapPath('/srv/a/d.qcow2', rules), '/data/b/d.qcow2');
  assert.equal(mapPath('/srv/ab.qcow2', rules), '/x/ab.qcow2', 'a prefix of a name is not a directory');
  assert.equal(mapPath('/other/d.qcow2', rules), '/other/d.qcow2');
  for (const bad of ['srv=/x', '/srv=x', '=/x', '/srv']) assert.throws(() => parsePathRule(bad), (e: unknown) => (e as { code?: string }).code === 'USAGE_BAD_PATH_MAP', bad);
});

test('disk copies: every image path mapped; writable disks copied with their size, read-only ones and cdroms not', () => {
  const spec = { name: 'v', disks: [
    { name: 'root', image: '/srv/root.qcow2', format: 'qcow2' },
    { name: 'iso', image: '/srv/boot.iso', format: 'raw', media: 'cdrom' },
    { name: 'ref', image: '/srv/ref.raw', format: 'raw', readOnly: true },
  ] };
  const out = planDiskCopies(spec, [parsePathRule('/srv=/dst')], { root: 1 << 30, iso: 1, ref: 2 });
  assert.deepEqual((out.spec['disks'] as Array<{ image: string }>).map((d) => d.image), ['/dst/root.qcow2', '/dst/boot.iso', '/dst/ref.raw']);
  assert.deepEqual(out.copies, [{ name: 'root', path: '/dst/root.qcow2', format: 'qcow2', sizeBytes: 1 << 30 }]);
  assert.equal((spec.disks[0] as { image: string }).image, '/srv/root.qcow2', 'the source spec is not changed');
});

test('disk copies on the target (F8): made by fd in imageDirs only (qcow2 header, raw size, 0600); a symlinked or outside directory, an existing file are refused and nothing is made', (t) => {
  const root = mkdtempSync(join(tmpdir(), `wdmig${process.pid}-`));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const [images, outside] = [join(root, 'images'), join(root, 'outside')];
  mkdirSync(images); mkdirSync(outside); mkdirSync(join(outside, 'sub'));
  symlinkSync(outside, join(images, 'link'));
  const host = { file: join(root, 'policy.yaml'), imageDirs: [images] };
  const size = 64 << 20;
  const undo = createDiskCopies([
    { name: 'root', path: join(images, 'root.qcow2'), format: 'qcow2', sizeBytes: size },
    { name: 'data', path: join(images, 'data.raw'), format: 'raw', sizeBytes: size },
  ], 'v', host);
  for (const [f, fmt] of [['root.qcow2', 'qcow2'], ['data.raw', 'raw']] as const) {
    const p = join(images, f);
    assert.equal(statSync(p).mode & 0o777, 0o600, f);
    const info = spawnSync('qemu-img', ['info', '-U', '--output=json', '-f', fmt, p], { encoding: 'utf8' });
    assert.equal(info.status, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'], size, f);
  }
  const check = spawnSync('qemu-img', ['check', '-f', 'qcow2', join(images, 'root.qcow2')], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const io = spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 1M 1M', '-c', 'read -P 0x33 1M 1M', '-c', 'read -P 0 8M 1M', join(images, 'root.qcow2')], { encoding: 'utf8' });
  assert.equal(io.status, 0, io.stderr);
  assert.doesNotMatch(io.stdout + io.stderr, /Pattern verification failed|error/i, io.stdout);
  undo();
  assert.deepEqual(readdirSync(images).sort(), ['link']);

  const refused = (path: string, code: string, why: RegExp): void => {
    assert.throws(() => createDiskCopies([
      { name: 'ok', path: join(images, 'first.raw'), format: 'raw', sizeBytes: 512 },
      { name: 'bad', path, format: 'qcow2', sizeBytes: size },
    ], 'v', host), (e: unknown) => (e as { code?: string }).code === code && /copies\[1\]\.path/.test(String(e)) && why.test(String(e)), path);
    assert.deepEqual(readdirSync(images).sort(), ['link'], `${path}: the first copy was removed again`);
    assert.deepEqual(readdirSync(outside).sort(), ['sub'], `${path}: nothing made outside`);
  };
  refused(join(images, 'link', 'x.qcow2'), 'VM_MIGRATE_REFUSED', /symbolic link/);
  refused(join(images, 'link', 'sub', 'x.qcow2'), 'VM_MIGRATE_REFUSED', /outside the host's imageDirs/);
  refused(join(outside, 'x.qcow2'), 'VM_MIGRATE_REFUSED', /outside the host's imageDirs/);
  assert.throws(() => createDiskCopies([{ name: 'r', path: join(images, 'x.qcow2'), format: 'qcow2', sizeBytes: size }], 'v', { file: null, imageDirs: [] }),
    (e: unknown) => (e as { code?: string }).code === 'VM_MIGRATE_REFUSED' && /lists no imageDirs/.test(String(e)));
  writeFileSync(join(images, 'taken.qcow2'), 'mine');
  assert.throws(() => createDiskCopies([{ name: 'r', path: join(images, 'taken.qcow2'), format: 'qcow2', sizeBytes: size }], 'v', host), /must not exist yet/);
  assert.equal(readFileSync(join(images, 'taken.qcow2'), 'utf8'), 'mine', 'an existing file is left as it was');
});

test('progress: query-migrate\'s figures as a sample and one line', () => {
  const s = sampleOf({ status: 'active', 'expected-downtime': 300, ram: { transferred: 47185920, remaining: 10485760, total: 268435456, 'dirty-pages-rate': 12 } });
  assert.deepEqual(s, { status: 'active', transferredBytes: 47185920, totalBytes: 268435456, remainingBytes: 10485760, dirtyPagesRate: 12, expectedDowntimeMs: 300 });
  assert.equal(describeSample(s), 'migration active: 45.0 MiB sent, 10.0 of 256.0 MiB left, 12 dirty pages/s, expected downtime 300 ms');
  assert.equal(sampleOf({}).status, 'none');
});

test('link: a peer without the token is dropped; the one with it gets the answer, and every byte after the handshake stays for the fd\'s next reader', async () => {
  const l = await listenForMigration('127.0.0.1', 10_000);
  try {
    const accepted = l.accept();
    const intruder = connect({ host: '127.0.0.1', port: l.address.port });
    intruder.write(Buffer.alloc(32, 1));
    intruder.resume().on('error', () => undefined);
    await new Promise<void>((r) => intruder.once('close', () => r()));
    const src = await connectForMigration(l.address);
    const dst = await accepted;
    // What the source's QEMU would send right after the handshake: written through another dup'd reader path (the fd itself).
    const payload = Buffer.from('QEVM\x00\x00\x00\x03 stream starts here');
    const { writeSync } = await import('node:fs');
    writeSync(src.fd, payload);
    await new Promise((r) => setTimeout(r, 100));
    const got = Buffer.alloc(payload.length);
    let n = 0;
    for (let i = 0; n < payload.length && i < 100; i++) {
      try { n += readSync(dst.fd, got, n, payload.length - n, null); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e; await new Promise((r) => setTimeout(r, 20)); }
    }
    assert.deepEqual(got, payload, 'the manager read none of it');
    src.close();
    dst.close();
  } finally {
    l.close();
  }
});

test('link (F6): a peer that sends nothing is closed after the auth time, past the pending cap one is closed at once, a wrong token is closed; the right one still gets through', async () => {
  const l = await listenForMigration('127.0.0.1', 10_000, { authMs: 300, maxPending: 2 });
  const peers: Socket[] = [];
  const closed = (s: Socket): Promise<number> => new Promise((r) => { const t0 = Date.now(); s.once('close', () => r(Date.now() - t0)); });
  const peer = async (): Promise<Socket> => {
    const s = connect({ host: '127.0.0.1', port: l.address.port });
    peers.push(s);
    s.resume().on('error', () => undefined);
    await new Promise<void>((r) => s.once('connect', () => r()));
    return s;
  };
  try {
    const accepted = l.accept();
    const silent = [await peer(), await peer()];
    const silentClosed = silent.map(closed);
    await new Promise((r) => setTimeout(r, 50));
    const third = await peer();
    await closed(third); // two already wait for their token: closed without a read
    await Promise.all(silentClosed); // and the silent ones are closed by the gate, not left open for the window
    const wrong = await peer();
    wrong.write(Buffer.alloc(32, 7));
    await closed(wrong);
    const src = await connectForMigration(l.address);
    const dst = await accepted;
    assert.ok(dst.fd >= 0);
    const late = connect({ host: '127.0.0.1', port: l.address.port });
    late.resume().on('error', () => undefined);
    await closed(late); // the listener is closed once a source proved itself
    src.close();
    dst.close();
  } finally {
    for (const s of peers) s.destroy();
    l.close();
  }
});

test('link: close before any source came rejects accept', async () => {
  const l = await listenForMigration('127.0.0.1', 10_000);
  const accepted = l.accept();
  l.close();
  await assert.rejects(accepted, (e: unknown) => (e as { code?: string }).code === 'VM_MIGRATE_FAILED');
});

test('listen address (F6): loopback is allowed; any other address only with the explicit opt-in (the stream is not encrypted)', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) { assert.equal(isLoopback(h), true, h); refuseInsecureListen(h, false); }
  for (const h of ['10.0.0.1', '0.0.0.0', '::', 'example.org', '128.0.0.1', '::ffff:10.0.0.1']) {
    assert.equal(isLoopback(h), false, h);
    assert.throws(() => refuseInsecureListen(h, false), (e: unknown) => (e as { code?: string }).code === 'VM_MIGRATE_REFUSED' && /not encrypted/.test(String(e)) && /insecure-network/.test(JSON.stringify((e as { suggestions?: unknown }).suggestions)), h);
    refuseInsecureListen(h, true);
  }
});

test('a VM whose devices changed in this run (hot-plug, detach) is refused before the target is asked; an entry of an older run does not count', () => {
  const rec = { version: 1, name: 'v', phase: 'running', spec: {}, createdAt: 'T', updatedAt: 'T',
    run: { qemu: { pid: 1, startTime: 1 }, uid: 1, gid: 1, accel: 'tcg', startedAt: 'RUN2', jailName: 'v', cgroups: [], protectionsOff: [] },
    hotplug: [{ name: 'old', run: 'RUN1' }] } as unknown as VmRecord;
  refuseChangedDevices(rec);
  const changed = { ...rec, hotplug: [...rec.hotplug!, { name: 'data', run: 'RUN2' }] } as unknown as VmRecord;
  assert.throws(() => refuseChangedDevices(changed), (e: unknown) => (e as { code?: string }).code === 'VM_MIGRATE_FAILED' && /data/.test(String(e)));
});
