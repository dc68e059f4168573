import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
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
  const d = await startDaemonProc(socket, env.stateRoot);
  const tag = String(process.pid % 100000);
  const member = makeUser(`wdm${tag}`, ['warden']);
  const admin = makeUser(`wda${tag}`, ['warden', 'warden-admin']);
  const outsider = makeUser(`wdo${tag}`, []);
  t.after(async () => {
    await d.stop();
    for (const u of [member, admin, outsider]) u.remove();
    env.cleanup();
    removeDir(sdir);
  });
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
  const mine = curlAs(`wdm${tag}`, socket, 'POST', '/v1/vms', spec(userVm));
  assert.equal(mine.status, 201, JSON.stringify(mine.json));
  assert.equal(mine.json.owner, member.uid);
  assert.deepEqual(curlAs(`wdm${tag}`, socket, 'GET', '/v1/vms').json.vms.map((v: { name: string }) => v.name), [userVm]);
  assert.equal(curlAs(`wdm${tag}`, socket, 'GET', `/v1/vms/${userVm}`).status, 200);
  assert.equal(curlAs(`wdm${tag}`, socket, 'POST', `/v1/vms/${userVm}/qmp`, '{"execute":"query-status"}').status, 403, 'QMP is admin-only, even on one\'s own VM');

  const seen = curlAs(`wda${tag}`, socket, 'GET', '/v1/vms');
  assert.deepEqual(seen.json.vms.map((v: { name: string }) => v.name).sort(), [rootVm, userVm].sort(), 'warden-admin sees all');
  assert.equal(curlAs(`wda${tag}`, socket, 'GET', '/v1').json.caller.admin, true);

  assert.equal(curlAs(`wdo${tag}`, socket, 'GET', '/v1').status, 0, 'outside the warden group the socket (0660 root:warden) refuses the connection');
  assert.equal(curlAs(`wdm${tag}`, socket, 'DELETE', `/v1/vms/${userVm}`).status, 200);
});
