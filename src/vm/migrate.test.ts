/** @module vm/migrate.test: the pure parts of a migration (path map, disk copies, progress lines) and the link's handshake, which must hand QEMU every byte after it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readSync } from 'node:fs';
import { mapPath, parsePathRule, planDiskCopies } from './migrate-disks.js';
import { connectForMigration, listenForMigration } from './migrate-link.js';
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

test('a VM whose devices changed in this run (hot-plug, detach) is refused before the target is asked; an entry of an older run does not count', () => {
  const rec = { version: 1, name: 'v', phase: 'running', spec: {}, createdAt: 'T', updatedAt: 'T',
    run: { qemu: { pid: 1, startTime: 1 }, uid: 1, gid: 1, accel: 'tcg', startedAt: 'RUN2', jailName: 'v', cgroups: [], protectionsOff: [] },
    hotplug: [{ name: 'old', run: 'RUN1' }] } as unknown as VmRecord;
  refuseChangedDevices(rec);
  const changed = { ...rec, hotplug: [...rec.hotplug!, { name: 'data', run: 'RUN2' }] } as unknown as VmRecord;
  assert.throws(() => refuseChangedDevices(changed), (e: unknown) => (e as { code?: string }).code === 'VM_MIGRATE_FAILED' && /data/.test(String(e)));
});
