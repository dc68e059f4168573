/** Idmapped binds (JailMount.idmap): a jail reads and writes another uid's 0700 directory as itself, read-only when asked, and a failed idmap leaves nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDMAP_DIR, JailError, launchJail } from '../../src/jail/index.js';
import { loadNative } from '../../src/sys/index.js';
import { isRoot, jailName, probeSpec, runProbe, tempConfig } from './helpers.js';

const FIRST = 231224; // this file's slice: 231224-231231
const skip = isRoot() ? false : 'needs root: the jailer switches uids and mounts';

/** A directory of uid 4242 (0700) behind the temp config's own 0700 directory, holding one file. */
function ownedDir(base: string): string {
  const dir = join(base, 'theirs');
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, 'f.txt'), 'from the host\n', { mode: 0o600 });
  chownSync(join(dir, 'f.txt'), 4242, 4242);
  chownSync(dir, 4242, 4242);
  return dir;
}

test('an idmapped bind: the jail reads and writes uid 4242\'s 0700 directory as its own uid; files it makes are 4242\'s on disk; ro-bind refuses writes', { skip }, async (t) => {
  const config = tempConfig(t, FIRST, 8);
  const dir = ownedDir(join(config.stateDir, '..'));
  const rw = jailName('idmap-rw');
  const script = 'id -u; stat -c "%u %a" /data/f.txt; cat /data/f.txt; if touch /data/new 2>/dev/null; then echo WROTE; else echo REFUSED; fi';
  const spec = probeSpec(rw, script, {});
  spec.mounts.push({ type: 'bind', source: dir, target: '/data', idmap: { uid: 4242, gid: 4242 } });
  const r = await runProbe(t, config, spec, { inspect: () => { assert.ok(existsSync(join(IDMAP_DIR, rw)), 'the clone is attached while the jail runs'); } });
  const [uid, st, text, wrote] = r.out.trim().split('\n');
  assert.equal(st, `${uid} 600`, 'the owner\'s file appears as the jail\'s uid');
  assert.equal(text, 'from the host');
  assert.equal(wrote, 'WROTE');
  assert.deepEqual([statSync(join(dir, 'new')).uid, statSync(join(dir, 'new')).gid], [4242, 4242], 'what the jail creates belongs to 4242 on disk');
  assert.ok(!existsSync(join(IDMAP_DIR, rw)), 'teardown removed the clone');

  const ro = jailName('idmap-ro');
  const roSpec = probeSpec(ro, script, {});
  roSpec.mounts.push({ type: 'ro-bind', source: dir, target: '/data', idmap: { uid: 4242, gid: 4242 } });
  const r2 = await runProbe(t, config, roSpec);
  assert.match(r2.out, /from the host\nREFUSED/);
  assert.ok(!existsSync(join(IDMAP_DIR, ro)));
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), 'no mount left on the host');
});

test('an idmap the filesystem refuses (procfs) fails the launch with JAIL_LAUNCH_FAILED and leaves nothing', { skip }, async (t) => {
  const config = tempConfig(t, FIRST, 8);
  const name = jailName('idmap-bad');
  const spec = probeSpec(name, 'echo should not run');
  spec.mounts.push({ type: 'ro-bind', source: '/proc/sys', target: '/data', idmap: { uid: 0, gid: 0 } });
  await assert.rejects(launchJail(spec, { fds: new Map(), config }), (e: unknown) => e instanceof JailError && e.code === 'JAIL_LAUNCH_FAILED' && /idmapping \/proc\/sys/.test(e.message));
  assert.ok(!existsSync(join(IDMAP_DIR, name)), 'no idmap directory');
  const leases = join(config.stateDir, 'leases.json');
  assert.ok(!existsSync(leases) || !readFileSync(leases, 'utf8').includes(name), 'lease released');
  assert.ok(!['memory', 'pids', 'unified'].some((c) => existsSync(`/sys/fs/cgroup/${c}/warden/${name}`)), 'no cgroup');
});

test('an idmapped bind whose source is reached through a symlink, or no longer belongs to the mapped uid, is refused before anything is mounted (a share path swapped after its check)', { skip }, async (t) => {
  const config = tempConfig(t, FIRST, 8);
  const base = join(config.stateDir, '..');
  ownedDir(base);
  // A root-only tree behind a 0700 parent: what a swapped share path would try to bring in.
  const hidden = join(base, 'root-only');
  mkdirSync(join(hidden, 'inner'), { recursive: true, mode: 0o700 });
  writeFileSync(join(hidden, 'inner', 'secret'), 'root only\n', { mode: 0o644 });
  symlinkSync(hidden, join(base, 'swapped'));
  // The swap happens after the spec was validated (which lstats the source), so the mount itself must refuse:
  // the addon's idmapMount, called as launchJail calls it.
  const target = join(base, 'mnt');
  mkdirSync(target);
  const native = loadNative();
  for (const [source, why] of [[join(base, 'swapped', 'inner'), /through no symlink/], [join(hidden, 'inner'), /no longer belongs to the uid/]] as const) {
    assert.throws(() => native.idmapMount(source, target, 4242, 231224, 4242, 231224, true), why);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(target), 'nothing mounted');
  }
  // Through the jailer: the same refusal fails the launch and leaves nothing.
  const name = jailName('idmap-swap');
  const spec = probeSpec(name, 'echo should not run');
  spec.mounts.push({ type: 'ro-bind', source: join(hidden, 'inner'), target: '/data', idmap: { uid: 4242, gid: 4242 } });
  await assert.rejects(launchJail(spec, { fds: new Map(), config }), (e: unknown) => e instanceof JailError && e.code === 'JAIL_LAUNCH_FAILED');
  assert.ok(!existsSync(join(IDMAP_DIR, name)), 'no idmap directory');
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(hidden), 'nothing of the root-only tree mounted');
});
