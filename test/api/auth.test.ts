import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ensureTestGuest } from '../../src/vm/index.js';
import { join } from 'node:path';
import { repoRoot } from '../../src/vm/index.js';
import { testEnv } from '../../src/vm/testing.js';
import { groupGid } from '../../src/api/auth.js';
import { curlAs, http, makeUser, removeDir, socketDir, startDaemonProc } from './helpers.js';

const root = process.getuid?.() === 0;

test('a second uid: a member of warden sees and touches only its own VMs (403 otherwise, QMP never); warden-admin sees all; a non-member cannot connect', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip('needs root: creates users');
  if (groupGid('warden') === null || groupGid('warden-admin') === null) return t.skip('the warden and warden-admin groups do not exist (scripts/setup.sh creates them)');
  const env = testEnv('warden-api-auth-');
  const sdir = socketDir();
  const socket = join(sdir, 'warden.sock');
  const d = await startDaemonProc(socket, env.stateRoot).catch((err: unknown) => { env.cleanup(); removeDir(sdir); throw err; });
  const tag = String(process.pid % 100000);
  const users: Array<ReturnType<typeof makeUser>> = [];
  t.after(async () => { // registered before any user exists: each one made is removed, also when a later step fails
    await d.stop();
    for (const u of users) u.remove();
    env.cleanup();
    removeDir(sdir);
  });
  const member = makeUser(`wdm${tag}`, ['warden']);
  users.push(member);
  const admin = makeUser(`wda${tag}`, ['warden', 'warden-admin']);
  users.push(admin);
  users.push(makeUser(`wdo${tag}`, []));
  const rootVm = `wdr-${tag}`;
  const userVm = `wdu-${tag}`;
  const spec = (name: string): string => JSON.stringify({ apiVersion: 'warden/v1', name, memory: '64Mi', accel: 'tcg', disks: [{ name: 'root', image: env.overlay, format: 'qcow2' }] });
  assert.equal((await http(socket, 'POST', '/v1/vms', spec(rootVm))).status, 201);

  const who = curlAs(`wdm${tag}`, socket, 'GET', '/v1');
  assert.equal(who.status, 200);
  assert.deepEqual([who.json.caller.uid, who.json.caller.admin], [member.uid, false]);
  assert.deepEqual(curlAs(`wdm${tag}`, socket, 'GET', '/v1/vms').json.vms, [], 'root\'s VM is not listed for the member');
  for (const [method, path, body] of [['GET', `/v1/vms/${rootVm}`], ['PUT', `/v1/vms/${rootVm}/state`, '{"action":"start"}'], ['DELETE', `/v1/vms/${rootVm}`],
    ['POST', `/v1/vms/${rootVm}/qmp`, '{"execute":"query-status"}']] as const) {
    const r = curlAs(`wdm${tag}`, socket, method, path, body);
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal(r.json.error.code, 'AUTH_FORBIDDEN');
  }
  const bridged = curlAs(`wdm${tag}`, socket, 'POST', '/v1/vms', JSON.stringify({ ...JSON.parse(spec(`wdb-${tag}`)), networks: [{ name: 'n0', type: 'bridge', bridge: 'br0' }] }));
  assert.deepEqual([bridged.status, bridged.json.error.code], [403, 'AUTH_FORBIDDEN'], 'host networking is for admins');
  const mine = curlAs(`wdm${tag}`, socket, 'POST', '/v1/vms', spec(userVm));
  assert.equal(mine.status, 201, JSON.stringify(mine.json));
  assert.equal(mine.json.owner, member.uid);
  assert.deepEqual(curlAs(`wdm${tag}`, socket, 'GET', '/v1/vms').json.vms.map((v: { name: string }) => v.name), [userVm]);
  assert.equal(curlAs(`wdm${tag}`, socket, 'GET', `/v1/vms/${userVm}`).status, 200);
  assert.equal(curlAs(`wdm${tag}`, socket, 'POST', `/v1/vms/${userVm}/qmp`, '{"execute":"query-status"}').status, 403, 'QMP is admin-only, even on one\'s own VM');
  // The daemon opens files as root: a member's VM whose disk is root's (in a 0700 directory) is not started for them.
  const denied = curlAs(`wdm${tag}`, socket, 'PUT', `/v1/vms/${userVm}/state?wait=30`, '{"action":"start"}');
  assert.deepEqual([denied.status, denied.json.error.code], [422, 'IMAGE_OWNER_DENIED'], JSON.stringify(denied.json));
  assert.match(denied.json.error.message, new RegExp(`cannot search the directory ${env.dir}`));

  const seen = curlAs(`wda${tag}`, socket, 'GET', '/v1/vms');
  assert.deepEqual(seen.json.vms.map((v: { name: string }) => v.name).sort(), [rootVm, userVm].sort(), 'warden-admin sees all');
  assert.equal(curlAs(`wda${tag}`, socket, 'GET', '/v1').json.caller.admin, true);

  assert.equal(curlAs(`wdo${tag}`, socket, 'GET', '/v1').status, 0, 'outside the warden group the socket (0660 root:warden) refuses the connection');
  // ... and one whose files are the member's own is started for them (QEMU still runs as its leased uid).
  const own = mkdtempSync(join(tmpdir(), 'warden-api-own-'));
  t.after(() => rmSync(own, { recursive: true, force: true }));
  const ownDisk = join(own, 'disk.qcow2');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', ownDisk, '64M']).status, 0);
  chownSync(own, member.uid, member.gid);
  chownSync(ownDisk, member.uid, member.gid);
  const guest = ensureTestGuest();
  // The member's boot files are the member's own too (the checkout may be in a 0700 directory such as /root).
  const [kernel, initrd] = [join(own, 'vmlinuz'), join(own, 'initrd.gz')];
  copyFileSync(guest.kernel, kernel);
  copyFileSync(guest.initrd, initrd);
  for (const f of [kernel, initrd]) chownSync(f, member.uid, member.gid);
  const ownVm = `wdq-${tag}`;
  assert.equal(curlAs(`wdm${tag}`, socket, 'POST', '/v1/vms', JSON.stringify({ apiVersion: 'warden/v1', name: ownVm, memory: '128Mi', accel: 'tcg',
    boot: { kernel, initrd, cmdline: guest.cmdline }, disks: [{ name: 'root', image: ownDisk, format: 'qcow2' }] })).status, 201);
  const ran = curlAs(`wdm${tag}`, socket, 'PUT', `/v1/vms/${ownVm}/state?wait=60`, '{"action":"start"}');
  assert.equal(ran.status, 200, JSON.stringify(ran.json));
  assert.equal(ran.json.operation.result.record.phase, 'running');
  assert.equal(curlAs(`wdm${tag}`, socket, 'DELETE', `/v1/vms/${ownVm}?force=1`).status, 200);

  // The member's own CLI, pointed at the daemon by $WARDEN_SOCKET, goes through it (no access to root's state files needed).
  const bin = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
  const as = (args: string[]) => spawnSync('setpriv', ['--reuid', `wdm${tag}`, '--regid', `wdm${tag}`, '--init-groups', process.execPath, bin, ...args],
    { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: '/nonexistent', WARDEN_SOCKET: socket } });
  if (spawnSync('setpriv', ['--reuid', `wdm${tag}`, '--regid', `wdm${tag}`, '--init-groups', 'test', '-r', bin]).status !== 0) {
    t.diagnostic(`skipped the CLI part: ${bin} is not readable by another uid`);
  } else {
    const listed = as(['list', '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout).map((v: { name: string }) => v.name), [userVm]);
    const refused = as(['kill', rootVm]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /AUTH_FORBIDDEN/);
  }
  assert.equal(curlAs(`wdm${tag}`, socket, 'DELETE', `/v1/vms/${userVm}`).status, 200);
});
