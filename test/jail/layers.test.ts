/** Integration: the optional layers: Landlock before exec, joining a given netns, listed devices, supplementary groups. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { launchJail, teardownJail, type JailError } from '../../src/jail/index.js';
import { assertGone, isRoot, jailName, probeSpec, runProbe, tempConfig } from './helpers.js';

const FIRST = 231168; // this file's slice: 231168-231183
const landlockAbi = (helper: string): number => Number(execFileSync(helper, ['abi'], { encoding: 'utf8' }).trim());

test('Landlock: with rules, only the listed paths are reachable; without, the private /tmp is writable', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST, 4);
  if (landlockAbi(config.helperPath) === 0) return t.skip('the kernel has no Landlock');
  const script = 'ls /usr > /dev/null && echo usr-readable; (echo x > /tmp/f) 2>/dev/null && echo tmp-writable || echo tmp-denied; echo done';
  const confined = await runProbe(t, config, probeSpec(jailName('ll'), script, { landlock: { readOnly: ['/usr'], readWrite: [] } }));
  assert.deepEqual(confined.out.split('\n').filter((l) => l !== ''), ['usr-readable', 'tmp-denied', 'done']);
  const open = await runProbe(t, config, probeSpec(jailName('noll'), script));
  assert.deepEqual(open.out.split('\n').filter((l) => l !== ''), ['usr-readable', 'tmp-writable', 'done']);
});

test('network join: the program lives in the named network namespace', async (t) => {
  if (!isRoot()) return t.skip('needs root: netns and uid switch');
  const config = tempConfig(t, FIRST + 4, 4);
  const ns = `warden-test-jail-ns-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) return t.skip('cannot create a network namespace here');
  t.after(() => { spawnSync('ip', ['netns', 'del', ns]); });
  const path = `/run/netns/${ns}`;
  const { exit, out } = await runProbe(t, config, probeSpec(jailName('join'), 'readlink /proc/self/ns/net', { network: { mode: 'join', path } }));
  assert.deepEqual(exit, { exitCode: 0 });
  assert.equal(out.trim(), `net:[${statSync(path).ino}]`);
});

test('listed devices appear in /dev and are the only ones the devices cgroup allows; groups are exactly the listed ones', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST + 8, 4);
  const name = jailName('dev');
  t.after(() => teardownJail(name, config));
  const spec = probeSpec(name, '[ -c /dev/net/tun ] && echo tun-present > /tmp/r; exec sleep 30', {
    devices: ['/dev/net/tun'], identity: { uid: FIRST + 8, gid: FIRST + 8, groups: [FIRST + 9] },
  });
  const h = await launchJail(spec, { fds: new Map(), config });
  const status = readFileSync(`/proc/${h.pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Groups:\\t${FIRST + 9}\\s*$`, 'm'));
  const devLeaf = h.cgroupPaths.find((p) => p.includes('/devices/'));
  if (devLeaf !== undefined) {
    const list = readFileSync(join(devLeaf, 'devices.list'), 'utf8').trim().split('\n').sort();
    assert.deepEqual(list, ['c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 10:200 rwm'].sort());
  }
  let marker = '';
  for (const deadline = Date.now() + 30_000; marker === '' && Date.now() < deadline;) {
    try { marker = readFileSync(`/proc/${h.pid}/root/tmp/r`, 'utf8'); } catch { /* not written yet */ }
    if (marker === '') await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(marker.trim(), 'tun-present');
  await teardownJail(name, config);
  await assertGone(config, h);
});

test('cgroup v2 for real on this host\'s unified mount: joined before exec, killed and removed; a limit it cannot enforce is refused', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const base = tempConfig(t, FIRST + 12, 4);
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (!/ cgroup2 /.test(mounts)) return t.skip('no cgroup2 mount here');
  const config = { ...base, cgroupVersion: 2 as const };
  const name = jailName('v2');
  const parent = `${/(\S+) cgroup2 /.exec(mounts)![1]}/${config.cgroupParent}`;
  const parentExisted = existsSync(parent);
  t.after(async () => {
    await teardownJail(name, config);
    // Only this test uses the v2 hierarchy here: remove the parent too if it made it and nobody else uses it.
    if (!parentExisted) try { rmdirSync(parent); } catch { /* in use or gone */ }
  });
  const { cgroup: _limits, ...noLimits } = probeSpec(name, 'exec sleep 30');
  const h = await launchJail(noLimits, { fds: new Map(), config });
  assert.equal(h.cgroupPaths.length, 1);
  const leaf = h.cgroupPaths[0]!;
  assert.match(readFileSync(`/proc/${h.pid}/cgroup`, 'utf8'), new RegExp(`^0::/warden/${name}$`, 'm'));
  assert.ok(readFileSync(join(leaf, 'cgroup.procs'), 'utf8').split('\n').includes(String(h.pid)));
  const res = await teardownJail(name, config);
  assert.ok(res.killed.includes(h.pid));
  await assertGone(config, h);
  // This v2 hierarchy has no memory controller: asking for a memory limit must fail, not run unlimited.
  const controllers = readFileSync(`${/(\S+) cgroup2 /.exec(mounts)![1]}/cgroup.controllers`, 'utf8');
  if (controllers.includes('memory')) return;
  await assert.rejects(launchJail(probeSpec(jailName('v2mem'), 'true'), { fds: new Map(), config }),
    (e: JailError) => e.code === 'JAIL_CGROUP_SETUP' && /memory/.test(e.message));
  assert.ok(!existsSync(config.stateDir) || JSON.parse(readFileSync(join(config.stateDir, 'leases.json'), 'utf8')).jails[name] === undefined);
});
