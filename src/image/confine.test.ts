/** @module image/confine.test: the chain policy with real qemu-img images in 0700 dirs: headers that point outside the allowed places, at root-only files, devices, FIFOs and through symlinks are refused before anything is opened; allowed places, named data files and the host policy are honoured. */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ImageError, chainFiles, loadHostPolicy, parseHostPolicy, walkChainConfined, type HostPolicy } from './index.js';
import { modeAllows, ownerDenial, ownerFromUid } from './access.js';
import { qemuImg, tempDir } from './testing.js';

const NO_HOST: HostPolicy = { file: null, imageDirs: [] };

/** img/ (the VM's images) and secret/ (a root-only file elsewhere), both in a 0700 temp dir. */
function setup(t: TestContext): { dir: string; img: string; victim: string; c: (...a: string[]) => void } {
  const tmp = tempDir();
  t.after(tmp.remove);
  chmodSync(tmp.dir, 0o700);
  const img = join(tmp.dir, 'img');
  mkdirSync(img, { mode: 0o700 });
  mkdirSync(join(tmp.dir, 'secret'), { mode: 0o700 });
  const victim = join(tmp.dir, 'secret', 'victim');
  writeFileSync(victim, 'SECRET\n', { mode: 0o600 });
  return { dir: tmp.dir, img, victim, c: (...a) => qemuImg(['create', '-q', ...a], img) };
}

async function refused(p: Promise<unknown>, code: string, layer: string): Promise<ImageError> {
  let caught: unknown;
  try { await p; } catch (e) { caught = e; }
  assert.ok(caught instanceof ImageError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.layer, layer, caught.message);
  assert.match(caught.message, /it was not opened/);
  return caught;
}

test('a backing file or data file outside the allowed places (a root-only file) is refused, naming the overlay and the fix', async (t) => {
  const { img, victim, c } = setup(t);
  c('-f', 'qcow2', '-u', '-b', victim, '-F', 'raw', 'b.qcow2', '1M');
  c('-f', 'raw', 'd.raw', '1M');
  c('-f', 'qcow2', '-o', `data_file=${join(img, 'd.raw')},data_file_raw=on`, 'd.qcow2', '1M');
  qemuImg(['amend', '-o', `data_file=${victim}`, join(img, 'd.qcow2')]);
  const b = await refused(walkChainConfined({ from: 'disks[0]', image: join(img, 'b.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', victim);
  assert.match(b.message, new RegExp(`^backing file ${victim} \\(recorded as "${victim}" in ${join(img, 'b.qcow2')}\\)`));
  assert.match(b.suggestions[0]!, /disks\[0\]\.allowDirs in the spec, or imageDirs in the host policy/);
  const d = await refused(walkChainConfined({ from: 'disks[1]', image: join(img, 'd.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', victim);
  assert.match(d.suggestions[0]!, new RegExp(`dataFile: ${victim}`));
  // The spec naming the data file, or allowing its directory, accepts it.
  const named = await walkChainConfined({ image: join(img, 'd.qcow2'), format: 'qcow2', dataFile: victim }, NO_HOST);
  assert.equal(named.layers[0]!.dataFilePath, victim);
  assert.deepEqual(chainFiles([named]).get(victim), named.layers[0]!.dataFileId);
  const allowed = await walkChainConfined({ image: join(img, 'b.qcow2'), format: 'qcow2', allowDirs: [join(img, '..', 'secret')] }, NO_HOST);
  assert.equal(allowed.layers[1]!.path, victim);
});

test('a VMDK extent outside the allowed places is refused like a data file', async (t) => {
  const { img, victim, c } = setup(t);
  c('-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'v.vmdk', '1M');
  const desc = join(img, 'v.vmdk');
  writeFileSync(desc, readFileSync(desc, 'latin1').replace('"v-flat.vmdk"', `"${victim}"`), 'latin1');
  await refused(walkChainConfined({ image: desc, format: 'vmdk' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', victim);
  const ok = await walkChainConfined({ image: desc, format: 'vmdk', allowDirs: [join(img, '..', 'secret')] }, NO_HOST);
  assert.deepEqual(ok.layers[0]!.extentPaths, [victim]);
  assert.equal(chainFiles([ok]).has(victim), true);
});

test('a symlink in the image directory that leads outside is refused by its real path; one that stays inside is followed', async (t) => {
  const { img, victim, c } = setup(t);
  symlinkSync(victim, join(img, 'link.raw'));
  c('-f', 'raw', 'real-base.raw', '1M');
  symlinkSync('real-base.raw', join(img, 'inside.raw'));
  c('-f', 'qcow2', '-u', '-b', 'link.raw', '-F', 'raw', 'out.qcow2', '1M');
  c('-f', 'qcow2', '-u', '-b', 'inside.raw', '-F', 'raw', 'in.qcow2', '1M');
  const err = await refused(walkChainConfined({ image: join(img, 'out.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', join(img, 'link.raw'));
  assert.match(err.message, new RegExp(`really ${victim}`));
  assert.equal((await walkChainConfined({ image: join(img, 'in.qcow2'), format: 'qcow2' }, NO_HOST)).layers.length, 2);
});

test('devices, FIFOs and sockets named by a header are refused even inside an allowed directory, and never opened; the disk\'s own device is accepted', async (t) => {
  const { dir, img, c } = setup(t);
  execFileSync('mkfifo', [join(img, 'fifo')]);
  execFileSync('mknod', [join(img, 'blk'), 'b', '7', '0']); // a loop device node: never opened by the walk
  c('-f', 'qcow2', '-u', '-b', 'fifo', '-F', 'raw', 'to-fifo.qcow2', '1M');
  c('-f', 'qcow2', '-u', '-b', 'blk', '-F', 'raw', 'to-blk.qcow2', '1M');
  c('-f', 'qcow2', '-u', '-b', '/dev/zero', '-F', 'raw', 'to-zero.qcow2', '1M');
  await refused(walkChainConfined({ image: join(img, 'to-fifo.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_DEVICE_REFUSED', join(img, 'fifo'));
  await refused(walkChainConfined({ image: join(img, 'to-blk.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_DEVICE_REFUSED', join(img, 'blk'));
  await refused(walkChainConfined({ image: join(img, 'to-zero.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', '/dev/zero');
  await refused(walkChainConfined({ image: join(img, 'to-zero.qcow2'), format: 'qcow2', allowDirs: ['/dev'] }, NO_HOST), 'IMAGE_DEVICE_REFUSED', '/dev/zero');
  // A spec whose disk is the device itself gets it (read-only here; the loop device need not be bound).
  if (existsSync('/sys/dev/block/7:0')) {
    const own = await walkChainConfined({ image: join(img, 'blk'), format: 'raw', readOnly: true }, NO_HOST);
    assert.equal(own.layers[0]!.path, join(img, 'blk'));
  } else t.diagnostic('no /sys/dev/block/7:0 (loop driver): the own-device case is skipped');
  assert.ok(dir);
});

test('the host policy allows a shared base directory for every disk; a bad policy file is refused', async (t) => {
  const { dir, img, c } = setup(t);
  const shared = join(dir, 'shared');
  mkdirSync(shared, { mode: 0o700 });
  qemuImg(['create', '-q', '-f', 'qcow2', join(shared, 'base.qcow2'), '1M']);
  c('-f', 'qcow2', '-b', join(shared, 'base.qcow2'), '-F', 'qcow2', 'top.qcow2');
  await refused(walkChainConfined({ image: join(img, 'top.qcow2'), format: 'qcow2' }, NO_HOST), 'IMAGE_OUTSIDE_ALLOWED_DIRS', join(shared, 'base.qcow2'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, `imageDirs:\n  - ${shared}\n`);
  const host = loadHostPolicy({ WARDEN_POLICY: file });
  assert.deepEqual(host, { file, imageDirs: [shared] });
  assert.equal((await walkChainConfined({ image: join(img, 'top.qcow2'), format: 'qcow2' }, host)).layers.length, 2);
  assert.deepEqual(loadHostPolicy({ WARDEN_POLICY: '' }).file === null || existsSync('/etc/warden/policy.yaml'), true);
  for (const bad of ['imageDirs: relative/dir', 'imageDirs: [/]', 'other: 1', '- a list']) {
    assert.throws(() => parseHostPolicy(bad, file), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_POLICY_INVALID', bad);
  }
  assert.throws(() => loadHostPolicy({ WARDEN_POLICY: join(dir, 'missing.yaml') }), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_POLICY_INVALID');
});

test('the owner check: a writable top layer its owner could not open is refused, a read-only one its owner could not read too; root is not checked', async (t) => {
  const { img, c } = setup(t);
  c('-f', 'qcow2', 'top.qcow2', '1M');
  const nobody = { uid: 65534, gids: [65534] };
  // img/ is 0700 root: uid 65534 cannot even reach the file.
  assert.match(ownerDenial(join(img, 'top.qcow2'), nobody, true) ?? '', /cannot search the directory/);
  await refused(walkChainConfined({ image: join(img, 'top.qcow2'), format: 'qcow2' }, NO_HOST, { owner: nobody }), 'IMAGE_OWNER_DENIED', join(img, 'top.qcow2'));
  const ro = await refused(walkChainConfined({ image: join(img, 'top.qcow2'), format: 'qcow2', readOnly: true }, NO_HOST, { owner: nobody }), 'IMAGE_OWNER_DENIED', join(img, 'top.qcow2'));
  assert.match(ro.message, /read-only for a VM of uid 65534/);
  await walkChainConfined({ image: join(img, 'top.qcow2'), format: 'qcow2' }, NO_HOST, { owner: { uid: 0, gids: [] } });
  assert.equal(ownerFromUid(0), null, 'root: nothing to check');
  assert.deepEqual(ownerFromUid(65534)?.uid, 65534);
  // The mode bits as the kernel reads them: the owner class wins even when the group class would allow more.
  assert.equal(modeAllows({ mode: 0o0466, uid: 1000, gid: 1000 }, { uid: 1000, gids: [1000] }, 2), false);
  assert.equal(modeAllows({ mode: 0o0466, uid: 1, gid: 1000 }, { uid: 1000, gids: [1000] }, 6), true);
  assert.equal(modeAllows({ mode: 0o0640, uid: 1, gid: 1 }, { uid: 1000, gids: [1000] }, 4), false);
});
