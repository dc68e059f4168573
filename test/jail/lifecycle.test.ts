/** Integration: a jail's life: real pid, cgroup membership, kill/wait, outliving the manager, teardown after a crash, reconnection. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attachJail, launchJail, listJails, teardownJail, JailError } from '../../src/jail/index.js';
import { assertGone, isRoot, jailName, probeSpec, tempConfig } from './helpers.js';

const FIRST = 231104; // this file's slice: 231104-231135

test('the handle names the program itself, inside its cgroup from the start; kill and wait report its end', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST, 8);
  const name = jailName('life');
  t.after(() => teardownJail(name, config));
  // The program records its own cgroup view at its very first step, then waits.
  const spec = probeSpec(name, 'cat /proc/self/cgroup > /tmp/cg; exec sleep 30');
  const h = await launchJail(spec, { fds: new Map(), config });
  // The gate closes at exec, a moment before the kernel has set up the new argv: poll (a
  // loaded host can hold the exec back for a long while; the deadline only bounds a hang).
  let cmdline = '';
  for (const deadline = Date.now() + 30_000; cmdline === '' && Date.now() < deadline;) {
    cmdline = readFileSync(`/proc/${h.pid}/cmdline`, 'utf8');
    if (cmdline === '') await new Promise((r) => setTimeout(r, 10));
  }
  // The program is the busybox shell, which may already have exec'd its `sleep`.
  assert.match(cmdline, /^(\/usr\/bin\/busybox|sleep)\0/, `pid is the program, not bwrap or the helper (cmdline ${JSON.stringify(cmdline)})`);
  const hostView = readFileSync(`/proc/${h.pid}/cgroup`, 'utf8');
  for (const c of ['cpu', 'memory', 'pids', 'devices']) {
    assert.match(hostView, new RegExp(`^\\d+:${c}:/warden/${name}$`, 'm'), `${c} membership seen from the host`);
  }
  for (const leaf of h.cgroupPaths) assert.ok(readFileSync(join(leaf, 'cgroup.procs'), 'utf8').split('\n').includes(String(h.pid)));
  // Inside, the cgroup namespace is rooted at the jail's cgroup: it was joined before bwrap unshared it.
  const cgFile = `/proc/${h.pid}/root/tmp/cg`;
  for (const deadline = Date.now() + 30_000; !(existsSync(cgFile) && readFileSync(cgFile, 'utf8').includes('memory')) && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const inside = readFileSync(cgFile, 'utf8');
  for (const c of ['cpu', 'memory', 'pids', 'devices']) assert.match(inside, new RegExp(`^\\d+:${c}:/$`, 'm'));
  const again = await attachJail(name, config);
  assert.equal(again?.pid, h.pid, 'a later manager reconnects to the same program');
  assert.deepEqual((await listJails(config)).map((j) => [j.name, j.running]), [[name, true]]);
  assert.equal(h.exited(), undefined);
  assert.equal(h.kill('SIGTERM'), true);
  assert.deepEqual(await h.wait({ pollMs: 10 }), { exitCode: 128 + 15 });
  assert.equal(h.kill('SIGTERM'), false, 'no signal to a pid that is gone');
  const res = await teardownJail(name, config);
  assert.equal(res.found, true);
  assert.deepEqual(res.exit, { exitCode: 143 });
  await assertGone(config, h);
  const second = await teardownJail(name, config);
  assert.equal(second.found, false, 'teardown is idempotent');
});

test('a second jail with a live name is refused; two jails get distinct uids', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST + 8, 8);
  const [a, b] = [jailName('one'), jailName('two')];
  t.after(async () => { await teardownJail(a, config); await teardownJail(b, config); });
  const ha = await launchJail(probeSpec(a, 'exec sleep 30'), { fds: new Map(), config });
  const hb = await launchJail(probeSpec(b, 'exec sleep 30'), { fds: new Map(), config });
  assert.notEqual(ha.uid, hb.uid);
  assert.deepEqual([ha.uid, hb.uid].sort(), [FIRST + 8, FIRST + 9]);
  await assert.rejects(launchJail(probeSpec(a, 'exec sleep 30'), { fds: new Map(), config }), (e: JailError) => e.code === 'JAIL_BUSY');
  assert.ok(existsSync(`/proc/${ha.pid}`), 'the refused launch did not disturb the live jail');
  // A manager with another lease store sees the populated cgroup and backs off without touching it.
  const other = tempConfig(t, FIRST + 12, 2);
  await assert.rejects(launchJail(probeSpec(a, 'exec sleep 30'), { fds: new Map(), config: other }), (e: JailError) => e.code === 'JAIL_BUSY' && /still holds processes/.test(e.message));
  assert.ok(existsSync(`/proc/${ha.pid}`), 'a foreign launch with the same cgroup name kills nothing');
  for (const leaf of ha.cgroupPaths) assert.ok(existsSync(leaf));
  await teardownJail(a, config);
  await teardownJail(b, config);
  await assertGone(config, ha);
  await assertGone(config, hb);
});

test('teardown with an owner leaves a same-named jail of another owner, or of another lease store, alone', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST + 16, 2);
  const name = jailName('owned');
  t.after(async () => { await teardownJail(name, config); });
  const h = await launchJail(probeSpec(name, 'exec sleep 30'), { fds: new Map(), config, owner: '/state-a/vms/x' });
  const foreign = await teardownJail(name, config, undefined, { owner: '/state-b/vms/x' });
  assert.equal(foreign.otherOwner, '/state-a/vms/x');
  assert.deepEqual([foreign.found, foreign.killed, foreign.removedCgroups], [false, [], []]);
  assert.ok(existsSync(`/proc/${h.pid}`), 'the other owner\'s jail runs on');
  const otherStore = await teardownJail(name, tempConfig(t, FIRST + 20, 2), undefined, { owner: '/state-a/vms/x' });
  assert.equal(otherStore.found, false, 'no record in this lease store: the cgroup of that name is not ours to empty');
  assert.ok(existsSync(`/proc/${h.pid}`));
  const own = await teardownJail(name, config, undefined, { owner: '/state-a/vms/x' });
  assert.ok(own.found && own.killed.includes(h.pid));
  await assertGone(config, h);
});

test('the program outlives the manager that launched it; teardown from another process reconciles', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST + 16, 8);
  const name = jailName('orphan');
  t.after(() => teardownJail(name, config));
  const launcher = join(fileURLToPath(new URL('.', import.meta.url)), 'launch-and-exit.js');
  const r = spawnSync(process.execPath, [launcher, JSON.stringify(config), JSON.stringify(probeSpec(name, 'exec sleep 30'))], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(existsSync(`/proc/${pid}`), 'still running after its manager exited');
  const h = await attachJail(name, config);
  assert.equal(h?.pid, pid);
  const res = await teardownJail(name, config);
  assert.ok(res.killed.includes(pid));
  await assertGone(config, h!);
});
