/** uid leases no one has (issue 18): ids of host accounts and groups, of live processes and of state files are skipped; a range the host hands out to users is refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LeaseStore, JailError, rangeConflicts } from '../../src/jail/index.js';
import { deadProcess } from '../../src/jail/uid-check.js';
import { tempConfig } from './helpers.js';

const FIRST = 231216; // this file's slice for the process and file cases: 231216-231223
const req = (name: string) => ({ name, cgroupName: name, cgroupLeaves: [], statusFile: '/nonexistent' });
const run = (cmd: string, args: string[]): void => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
};

/** Removes a test account or group for sure: -f (another VM's QEMU may run as 200000 meanwhile), retried while /etc/passwd is locked. */
async function removeAccount(tool: 'userdel' | 'groupdel', name: string, db: 'passwd' | 'group'): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (spawnSync('getent', [db, name]).status !== 0) return;
    spawnSync(tool, tool === 'userdel' ? ['-f', name] : [name]);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${tool} ${name} did not remove it: remove it by hand`);
}

test('a host account with uid 200000 and a host group with gid 200001 are never leased', { timeout: 60_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: useradd');
  const user = `wpol${process.pid}`;
  const group = `wpolg${process.pid}`;
  // Made here and removed after, also on failure; -r: no subuid/subgid entries (useradd gives a normal user 65536 of them), -M -N: no home, no group of its own.
  t.after(() => removeAccount('userdel', user, 'passwd'));
  t.after(() => removeAccount('groupdel', group, 'group'));
  run('groupadd', ['-r', '-g', '200001', group]);
  run('useradd', ['-r', '-M', '-N', '-g', '65534', '-s', '/usr/sbin/nologin', '-u', '200000', user]);
  // The whole default range: other VMs on this host may hold the next few ids meanwhile.
  const config = tempConfig(t, 200000, 10000);
  const store = new LeaseStore(config, async () => true);
  const a = await store.acquire(req('a'));
  assert.notEqual(a.uid, 200000, 'the host account\'s uid');
  assert.notEqual(a.uid, 200001, 'the host group\'s gid');
  assert.ok(a.uid > 200001, String(a.uid));
  const one = tempConfig(t, 200000, 1);
  await assert.rejects(new LeaseStore(one, async () => true).acquire(req('b')),
    (e: JailError) => e.code === 'JAIL_NO_FREE_UID' && e.message.includes(`uid 200000 is the host account "${user}"`));
});

test('an id that owns a live process or files in the jailer\'s state is skipped', { timeout: 60_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: setpriv and chown');
  const config = tempConfig(t, FIRST, 8);
  // A process running as FIRST that no lease accounts for (another manager's, or a stray one).
  const p = spawn('setpriv', [`--reuid=${FIRST}`, `--regid=${FIRST}`, '--clear-groups', 'sleep', '60'], { stdio: 'ignore' });
  t.after(() => { p.kill('SIGKILL'); });
  await new Promise((r) => setTimeout(r, 300));
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(config.stateDir, 'left-behind'), '');
  chownSync(join(config.stateDir, 'left-behind'), FIRST + 1, FIRST + 1);
  const store = new LeaseStore(config, async () => true);
  assert.equal((await store.acquire(req('a'))).uid, FIRST + 2);
});

test('a range that overlaps login.defs\' user range or another user\'s subuids is refused; the warden user\'s own entry reserves it', async (t) => {
  const defs = 'UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n';
  assert.deepEqual(rangeConflicts({ first: 200000, count: 10000 }, { loginDefs: defs, subuid: '', subgid: '' }), []);
  const sub = 'alice:100000:65536\nbob:165536:65536\n';
  const c = rangeConflicts({ first: 200000, count: 10000 }, { loginDefs: defs, subuid: sub, subgid: 'warden:200000:10000\n' });
  assert.deepEqual(c.map((x) => [x.source, x.first, x.active]), [['/etc/subuid', 165536, true]], 'bob\'s subuids overlap; warden\'s subgid entry is the reservation');
  const inactive = rangeConflicts({ first: 200000, count: 10000 }, { loginDefs: defs, subuid: sub, subgid: '' }, { newuidmap: false, newgidmap: false });
  assert.deepEqual(inactive.map((x) => x.active), [false], 'without newuidmap an entry maps nothing (reported, not refused)');
  assert.equal(rangeConflicts({ first: 59000, count: 2000 }, { loginDefs: defs, subuid: '', subgid: '' }).length, 2, 'UID and GID ranges');
  // The real store, on this host's login.defs: a range inside the user range is refused before anything is leased.
  const config = tempConfig(t, 1000, 10);
  await assert.rejects(new LeaseStore(config, async () => true).acquire(req('x')),
    (e: JailError) => e.code === 'JAIL_UID_RANGE_CONFLICT' && /login\.defs/.test(e.message) && /usermod --add-subuids/.test(e.suggestions[0]!));
});

test('a dead process (a zombie its parent has not reaped yet) does not keep its id from a lease; a zombie leader with live threads does', { timeout: 60_000 }, async (t) => {
  assert.equal(deadProcess('Name:\tbwrap\nState:\tZ (zombie)\nThreads:\t1\nUid:\t1\t1\t1\t1\n'), true);
  assert.equal(deadProcess('Name:\tqemu\nState:\tZ (zombie)\nThreads:\t2\nUid:\t1\t1\t1\t1\n'), false, 'its other threads still run');
  assert.equal(deadProcess('Name:\tsleep\nState:\tS (sleeping)\nThreads:\t1\n'), false);
  if (process.getuid?.() !== 0) return t.skip('needs root: setpriv');
  const first = FIRST + 4;
  const config = tempConfig(t, first, 4);
  // sh starts a child as `first` that exits at once, then becomes sleep, which never reaps it.
  const p = spawn('sh', ['-c', `setpriv --reuid=${first} --regid=${first} --clear-groups true & exec sleep 60`], { stdio: 'ignore' });
  t.after(() => { p.kill('SIGKILL'); });
  let zombie = false;
  for (let i = 0; i < 300 && !zombie; i++) {
    const ps = spawnSync('ps', ['-o', 'stat=', '--ppid', String(p.pid)], { encoding: 'utf8' }).stdout.trim();
    zombie = ps.startsWith('Z');
    if (!zombie) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(zombie, 'the test made its zombie');
  assert.equal((await new LeaseStore(config, async () => true).acquire(req('a'))).uid, first, 'the zombie\'s id is leased');
});
