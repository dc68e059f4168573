/** A daemon VM's owner is checked on what the start and hot-plug jobs open, read access included: a read-only disk, a boot file or a hot-plugged disk that is a symlink to a root-only file is refused there, with no API check before. */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitCodeFor, type WardenError } from '../errors/index.js';
import { ownerFromUid } from '../image/index.js';
import { loadNative } from '../sys/index.js';
import { openSealedCopies } from './boot-fds.js';
import { SealedCopyCache } from './sealed-cache.js';
import { DaemonService } from './daemon.js';
import { ensureTestGuest } from './guest.js';
import { leftovers, testEnv, vmName } from './testing.js';

/** A second uid (useradd -r, removed after, also on failure); null when not root. */
function secondUid(t: TestContext, user: string): number {
  t.after(() => { spawnSync('userdel', ['-f', user]); });
  const add = spawnSync('useradd', ['-r', '-M', '-N', '-g', '65534', '-s', '/usr/sbin/nologin', user], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`useradd ${user}: ${add.stderr}`);
  const uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
  assert.ok(uid > 0, `uid of ${user}`);
  return uid;
}

/** own/ (0700, the uid's: its disk, base, kernel, initrd) and secret/victim (0600 root in a 0700 root dir), in a 0711 temp dir. */
function files(t: TestContext, uid: number): { own: string; victim: string; chown: (p: string) => void; raw: (p: string) => void } {
  const top = mkdtempSync(join(tmpdir(), 'warden-owner-read-'));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  chmodSync(top, 0o711);
  const own = join(top, 'own');
  mkdirSync(own, { mode: 0o700 });
  const chown = (p: string) => chownSync(p, uid, 65534);
  chown(own);
  mkdirSync(join(top, 'secret'), { mode: 0o700 });
  const victim = join(top, 'secret', 'victim');
  writeFileSync(victim, Buffer.alloc(1024 * 1024, 'S'), { mode: 0o600 });
  const raw = (p: string) => { writeFileSync(p, Buffer.alloc(1024 * 1024)); chmodSync(p, 0o600); chown(p); };
  return { own, victim, chown, raw };
}

function deniedFor(uid: number, path: string) {
  return (e: WardenError) => {
    assert.equal(e.code, 'IMAGE_OWNER_DENIED', e.message);
    assert.equal(exitCodeFor(e), 3);
    assert.match(e.message, new RegExp(`for a VM of uid ${uid}`));
    assert.ok(e.message.includes(path), e.message);
    return true;
  };
}

test('a VM of a second uid: a read-only disk that is a symlink to a root-only file is refused at start (no API check: the daemon start, as a restart makes it), nothing left; its own files start; a hot-plug of such a symlink is refused in the job, nothing left; its own file attaches', { timeout: 240_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: useradd and a daemon acting for another uid');
  const uid = secondUid(t, `wfr${process.pid}`);
  const f = files(t, uid);
  const guest = ensureTestGuest();
  const [disk, kernel, initrd, ro, plug] = ['disk.qcow2', 'vmlinuz', 'initrd.gz', 'ro.raw', 'plug.raw'].map((n) => join(f.own, n)) as [string, string, string, string, string];
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']).status, 0);
  copyFileSync(guest.kernel, kernel);
  copyFileSync(guest.initrd, initrd);
  for (const p of [disk, kernel, initrd]) f.chown(p);
  symlinkSync(f.victim, ro); // what the owner could do to a file of her own after any API check

  const env = testEnv('warden-owner-read-state-');
  const svc = await DaemonService.open({ stateDir: env.stateRoot, socket: `${env.dir}/none.sock` });
  const name = vmName('wdr');
  t.after(async () => {
    await svc.kill(name).catch(() => undefined);
    await svc.close().catch(() => undefined);
    env.cleanup();
  });
  const spec = {
    apiVersion: 'warden/v1', name, memory: '128Mi', accel: 'tcg', hotplugSlots: 1,
    boot: { kernel, initrd, cmdline: guest.cmdline },
    disks: [{ name: 'root', image: disk, format: 'qcow2' }, { name: 'data', image: ro, format: 'raw', readOnly: true }],
  };
  const file = join(env.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(spec));
  assert.equal((await svc.create({ file }, { owner: uid })).owner, uid);

  await assert.rejects(svc.start(name), deniedFor(uid, ro));
  assert.notEqual((await svc.get(name)).phase, 'running');
  assert.deepEqual(leftovers(name, env.stateRoot), [], 'nothing left: no process, cgroup, lease or socket');

  // The owner's own files: the same VM starts.
  rmSync(ro);
  f.raw(ro);
  await svc.start(name);
  assert.equal((await svc.get(name)).phase, 'running');

  // Hot-plug as the daemon's job runs it (no API check before): the record's owner is checked on the job's own walk.
  symlinkSync(f.victim, plug);
  for (const readOnly of [true, false]) {
    await assert.rejects(svc.attachDisk(name, { name: 'x', image: plug, format: 'raw', readOnly }), (e: WardenError) => deniedFor(uid, plug)(e));
    const rec = await svc.get(name);
    assert.deepEqual([rec.hotplug ?? [], rec.spec['disks'] as unknown[]].map((x) => x.length), [0, 2], 'no entry, no disk added');
    const fdsets = (await svc.qmp(name, 'query-fdsets')) as Array<{ fds: Array<{ opaque?: string }> }>;
    assert.ok(!JSON.stringify(fdsets).includes(plug), `no fd of ${plug} in QEMU: ${JSON.stringify(fdsets)}`);
  }
  rmSync(plug);
  f.raw(plug);
  const ok = await svc.attachDisk(name, { name: 'x', image: plug, format: 'raw' });
  assert.equal(ok.state, 'attached');
});

test('boot files are opened for a VM owner only if that uid could read them, judged on the inode opened', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: a second uid and root-only files');
  const uid = secondUid(t, `wfb${process.pid}`);
  const f = files(t, uid);
  const owner = ownerFromUid(uid);
  const link = join(f.own, 'initrd.gz');
  symlinkSync(f.victim, link);
  const planned = [{ kind: 'sealed-copy', name: 'initrd', path: link, from: 'boot.initrd' }] as unknown as Parameters<typeof openSealedCopies>[0];
  const native = loadNative();
  assert.throws(() => openSealedCopies(planned, 'wdb', native, owner), (e: WardenError) => deniedFor(uid, link)(e) && e.message.includes('boot.initrd'));
  rmSync(link);
  f.raw(link);
  const fds = openSealedCopies(planned, 'wdb', native, owner);
  assert.equal(fds.size, 1);
  for (const fd of fds.values()) native.closeFd(fd);
  // Root's VM (owner null): unchanged, root reads the root-only file.
  const rootFds = openSealedCopies([{ ...planned[0]!, path: f.victim }] as typeof planned, 'wdb', native, null);
  for (const fd of rootFds.values()) native.closeFd(fd);
  // A copy of the root-only file kept for root's start is no way around the check: each start opens and checks the file itself.
  const cache = new SealedCopyCache(native, 1 << 30, -60_000);
  t.after(() => cache.clear());
  for (const fd of openSealedCopies([{ ...planned[0]!, path: f.victim }] as typeof planned, 'wdb', native, null, cache).values()) native.closeFd(fd);
  assert.equal(cache.size.copies, 1);
  rmSync(link);
  symlinkSync(f.victim, link);
  assert.throws(() => openSealedCopies(planned, 'wdb', native, owner, cache), (e: WardenError) => deniedFor(uid, link)(e));
});
