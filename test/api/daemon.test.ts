import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { NodeFs } from '../../src/sys/index.js';
import { isAlive } from '../../src/vm/proc.js';
import { leftovers, testEnv, vmName } from '../../src/vm/testing.js';
import { repoRoot } from '../../src/vm/index.js';
import { WebSocket } from 'ws';
import { GUEST_READY_LINE } from '../../src/vm/guest.js';
import { waitForText } from '../../src/vm/testing.js';
import { http, removeDir, socketDir, sse, startDaemonProc, type DaemonProc } from './helpers.js';

const root = process.getuid?.() === 0;
const SKIP = 'needs root: the jailer switches uids and creates cgroups';
const fs = new NodeFs();

/** The HTTP status a refused WebSocket upgrade got. */
function refusedWith(url: string, origin?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin === undefined ? {} : { origin });
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')); });
    ws.on('error', () => undefined);
  });
}

test('wardend over HTTP: define, start, crash event with no command, SIGKILL of the daemon with the VM adopted, the CLI through the daemon, delete', { timeout: 300_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-api-e2e-');
  const sdir = socketDir();
  const socket = join(sdir, 'warden.sock');
  let d: DaemonProc = await startDaemonProc(socket, env.stateRoot).catch((err: unknown) => { env.cleanup(); removeDir(sdir); throw err; });
  const name = vmName('wda-e2e');
  t.after(async () => {
    await http(socket, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    await d.stop();
    env.cleanup();
    removeDir(sdir);
  });

  // define: the spec as JSON (its paths are absolute)
  const spec = readFileSync(env.specFile({ name }), 'utf8');
  const created = await http(socket, 'POST', '/v1/vms', spec);
  assert.equal(created.status, 201, created.text);
  assert.equal(created.json.owner, 0);
  assert.equal((await http(socket, 'POST', '/v1/vms', spec)).json.error.code, 'VM_EXISTS');

  const events = sse(socket, `/v1/events?vm=${name}`);
  t.after(() => events.close());
  await events.ready;
  const started = await http(socket, 'PUT', `/v1/vms/${name}/state?wait=120`, JSON.stringify({ action: 'start' }));
  assert.equal(started.status, 200, started.text);
  assert.equal(started.json.operation.status, 'succeeded');
  assert.equal(started.json.operation.result.record.phase, 'running');
  await events.next((e) => e.event === 'started', 10_000);
  const vm = (await http(socket, 'GET', `/v1/vms/${name}`)).json;
  assert.equal(vm.phase, 'running');
  assert.deepEqual((await http(socket, 'POST', `/v1/vms/${name}/qmp`, JSON.stringify({ execute: 'query-status' }))).json.return.status, 'running');
  assert.equal((await http(socket, 'PUT', `/v1/vms/${name}/state`, JSON.stringify({ action: 'start' }))).status, 409, 'start of a running VM is refused at once');

  // The serial console over a WebSocket: a one-shot ticket, the serial log first, one client at a time.
  await waitForText(join(env.stateRoot, 'vms', name, 'serial.log'), GUEST_READY_LINE, 60_000);
  assert.match((await http(socket, 'GET', `/v1/vms/${name}/logs`)).text, new RegExp(GUEST_READY_LINE), 'logs over HTTP');
  assert.match((await http(socket, 'GET', '/v1/metrics')).text, new RegExp(`^warden_vm_info\\{vm="${name}",phase="running",accel="tcg"\\} 1$`, 'm'));
  const ticket = await http(socket, 'POST', `/v1/vms/${name}/console`);
  assert.equal(ticket.status, 201, ticket.text);
  const url = `ws+unix://${socket}:${ticket.json.path}`;
  const ws = new WebSocket(url);
  t.after(() => ws.terminate());
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (b: Buffer) => { seen += b.toString('latin1'); if (seen.includes(GUEST_READY_LINE)) resolve(); });
    ws.on('error', reject);
  });
  assert.equal(await refusedWith(url), 403, 'a ticket works once');
  const fromPage = await http(socket, 'POST', `/v1/vms/${name}/console`);
  assert.equal(await refusedWith(`ws+unix://${socket}:${fromPage.json.path}`, 'https://elsewhere.example'), 403, 'a browser page of another origin is refused');
  const second = await http(socket, 'POST', `/v1/vms/${name}/console`);
  assert.equal(await refusedWith(`ws+unix://${socket}:${second.json.path}`), 409, 'one client at a time without force');
  const forced = await http(socket, 'POST', `/v1/vms/${name}/console?force=1`);
  const closedOld = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
  const ws2 = new WebSocket(`ws+unix://${socket}:${forced.json.path}`);
  t.after(() => ws2.terminate());
  await new Promise((r) => ws2.once('open', r));
  assert.equal(await closedOld, 4000, 'force takes the console over');
  ws2.close();

  // QEMU killed behind everyone's back: the daemon publishes it with no command run.
  process.kill(vm.run.qemu.pid, 'SIGKILL');
  const crash = await events.next((e) => e.event === 'stopped', 10_000);
  assert.equal(crash.data.reason, 'crashed');
  assert.equal(crash.data.signal, 'SIGKILL');
  assert.equal((await http(socket, 'GET', `/v1/vms/${name}`)).json.phase, 'crashed');

  // start again as an operation (202), and a client that vanishes mid-operation changes nothing
  const accepted = await http(socket, 'PUT', `/v1/vms/${name}/state`, JSON.stringify({ action: 'start' }));
  assert.equal(accepted.status, 202);
  const op = await http(socket, 'GET', `/v1/operations/${accepted.json.operation.id}/wait?wait=120`);
  assert.equal(op.json.operation.status, 'succeeded', op.text);
  const pid = (await http(socket, 'GET', `/v1/vms/${name}`)).json.run.qemu.pid as number;
  const startTime = (await http(socket, 'GET', `/v1/vms/${name}`)).json.run.qemu.startTime as number;
  const lastId = events.events[events.events.length - 1]!.id!;

  // SIGKILL the daemon: the VM keeps running; a new daemon adopts it (pid, start time, QMP).
  d.proc.kill('SIGKILL');
  await new Promise((r) => d.proc.once('exit', r));
  assert.equal(await isAlive(fs, { pid, startTime }), true, 'QEMU outlives its daemon');
  d = await startDaemonProc(socket, env.stateRoot);
  assert.match(d.stderr(), /1 VMs adopted/);
  const adopted = (await http(socket, 'GET', `/v1/vms/${name}`)).json;
  assert.equal(adopted.phase, 'running');
  assert.equal(adopted.run.qemu.pid, pid);
  assert.equal((await http(socket, 'POST', `/v1/vms/${name}/qmp`, JSON.stringify({ execute: 'query-status' }))).json.return.status, 'running');
  const resumed = sse(socket, `/v1/events?vm=${name}`, { 'last-event-id': lastId });
  t.after(() => resumed.close());
  await resumed.ready;
  await resumed.next((e) => e.event === 'resync', 5000); // another daemon run: what came before is gone

  // The CLI finds the daemon through the state root and goes through it (the daemon publishes the kill).
  const cli = (args: string[]) => spawnSync(process.execPath, [join(repoRoot(), 'dist/src/cli/bin.js'), ...args, '--state-dir', env.stateRoot], { encoding: 'utf8' });
  const listed = cli(['list', '--json']);
  assert.equal(listed.status, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout)[0].phase, 'running');
  const logs = cli(['logs', name]);
  assert.equal(logs.status, 0, logs.stderr);
  assert.match(logs.stdout, new RegExp(GUEST_READY_LINE), '`warden logs` through the daemon');
  // `warden console` through the daemon's WebSocket: the backlog arrives, Ctrl-] detaches.
  const con = spawn(process.execPath, [join(repoRoot(), 'dist/src/cli/bin.js'), 'console', name, '--state-dir', env.stateRoot], { stdio: ['pipe', 'pipe', 'pipe'] });
  let conOut = '';
  let conErr = '';
  con.stderr!.on('data', (c: Buffer) => { conErr += c.toString(); });
  const conDone = new Promise<number | null>((r) => con.once('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no console backlog: ${conErr}`)), 20_000);
    con.stdout!.on('data', (c: Buffer) => { conOut += c.toString('latin1'); if (conOut.includes(GUEST_READY_LINE)) { clearTimeout(timer); resolve(); } });
  });
  con.stdin!.write(Buffer.from([0x1d]));
  assert.equal(await conDone, 0, conErr);
  assert.match(conErr, /detached from/);

  const follower = spawn(process.execPath, [join(repoRoot(), 'dist/src/cli/bin.js'), 'events', '--vm', name, '--type', 'stopped', '--count', '1', '--json', '--state-dir', env.stateRoot], { stdio: ['ignore', 'pipe', 'pipe'] });
  let followed = '';
  follower.stdout!.on('data', (c: Buffer) => { followed += c.toString(); });
  const followerDone = new Promise((r) => follower.once('exit', r));
  const clients = async (): Promise<number> => Number(/^warden_events_clients (\d+)$/m.exec((await http(socket, 'GET', '/v1/metrics')).text)?.[1] ?? 0);
  const before = await clients();
  for (let i = 0; i < 200 && (await clients()) <= before; i++) await new Promise((r) => setTimeout(r, 100)); // until it has subscribed
  const killed = cli(['kill', name]);
  assert.equal(killed.status, 0, killed.stderr);
  const byCli = await resumed.next((e) => e.event === 'stopped', 10_000);
  assert.equal(byCli.data.reason, 'killed');
  assert.equal(byCli.data.requestor.uid, 0);
  await followerDone;
  assert.equal(JSON.parse(followed.trim()).reason, 'killed', '`warden events` follows the daemon\'s stream');
  assert.equal(cli(['start', 'no-such-vm']).status, 5, 'VM_NOT_FOUND through the daemon keeps its exit status');

  // A client that vanishes mid-operation: the start goes on and nothing is lost.
  await new Promise<void>((resolve) => {
    const req = request({ socketPath: socket, method: 'PUT', path: `/v1/vms/${name}/state?wait=120`, agent: false, headers: { 'content-type': 'application/json' } });
    req.on('error', () => resolve());
    req.end(JSON.stringify({ action: 'start' }));
    setTimeout(() => { req.destroy(); resolve(); }, 100);
  });
  await resumed.next((e) => e.event === 'started' && e.data.seq > byCli.data.seq, 60_000);
  assert.equal((await http(socket, 'GET', `/v1/vms/${name}`)).json.phase, 'running');
  assert.equal((await http(socket, 'DELETE', `/v1/vms/${name}`)).json.error.code, 'VM_INVALID_STATE', 'a running VM is not deleted without force');

  // Through the daemon the CLI shows the steps as direct mode does (the daemon publishes them as progress events).
  const stopped = cli(['stop', name, '--force']);
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.match(stopped.stderr, new RegExp(`^stopping VM ${name}$`, 'm'));
  assert.match(stopped.stderr, new RegExp(`^VM ${name} is stopped: `, 'm'));
  const del = await http(socket, 'DELETE', `/v1/vms/${name}`);
  assert.equal(del.status, 200, del.text);
  assert.equal((await http(socket, 'GET', `/v1/vms/${name}`)).status, 404);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('wardend killed in the middle of a start: the next daemon undoes it from the record', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-api-mid-');
  const sdir = socketDir();
  const socket = join(sdir, 'warden.sock');
  let d: DaemonProc = await startDaemonProc(socket, env.stateRoot, { WARDEN_TEST_DIE_BEFORE: 'qmp' }).catch((err: unknown) => { env.cleanup(); removeDir(sdir); throw err; });
  const name = vmName('wda-mid');
  t.after(async () => {
    await http(socket, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    await d.stop();
    env.cleanup();
    removeDir(sdir);
  });
  assert.equal((await http(socket, 'POST', '/v1/vms', readFileSync(env.specFile({ name }), 'utf8'))).status, 201);
  const exited = new Promise((r) => d.proc.once('exit', r));
  await http(socket, 'PUT', `/v1/vms/${name}/state?wait=120`, JSON.stringify({ action: 'start' })).catch(() => undefined);
  await exited;
  d = await startDaemonProc(socket, env.stateRoot);
  const vm = (await http(socket, 'GET', `/v1/vms/${name}`)).json;
  assert.equal(vm.phase, 'stopped');
  assert.equal(vm.lastExit.reason, 'interrupted');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
