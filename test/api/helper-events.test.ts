/** A helper's death is an event: wardend watches each helper's pid and publishes `helper-died` on the SSE stream; a stop's own teardown of helpers is not reported. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { NodeFs } from '../../src/sys/index.js';
import { waitGone } from '../../src/vm/teardown.js';
import { leftovers } from '../../src/vm/testing.js';
import { daemonFixture, http, sse } from './helpers.js';

const root = process.getuid?.() === 0;
const skip = !root ? 'needs root: the jailer switches uids and creates cgroups'
  : !existsSync('/usr/bin/passt') || !existsSync('/usr/bin/swtpm') ? 'needs passt and swtpm' : false;

test('wardend: kill -9 of passt is a helper-died event on SSE with kind, pid and VM; inspect shows it; the stop after it reports no other helper', { skip, timeout: 240_000 }, async (t) => {
  const { env, socket, name } = await daemonFixture(t, 'warden-api-helper-', 'wda-helper');
  const spec = readFileSync(env.specFile({ name, networks: [{ name: 'net0', type: 'user' }], extra: { tpm: true } }), 'utf8');
  assert.equal((await http(socket, 'POST', '/v1/vms', spec)).status, 201);
  const events = sse(socket, `/v1/events?vm=${name}`);
  t.after(() => events.close());
  await events.ready;
  const started = await http(socket, 'PUT', `/v1/vms/${name}/state?wait=120`, JSON.stringify({ action: 'start' }));
  assert.equal(started.json.operation?.status, 'succeeded', started.text);
  const helpers = started.json.operation.result.record.helpers as Array<{ kind: string; jailName: string; proc: { pid: number; startTime: number } }>;
  assert.deepEqual(helpers.map((h) => h.kind).sort(), ['passt', 'swtpm']);
  const passt = helpers.find((h) => h.kind === 'passt')!;

  process.kill(passt.proc.pid, 'SIGKILL');
  const died = await events.next((e) => e.event === 'helper-died', 15_000);
  assert.equal(died.data.vm, name);
  assert.equal(died.data.data.kind, 'passt');
  assert.equal(died.data.data.pid, passt.proc.pid);
  assert.equal(died.data.data.from, 'networks[0]');
  assert.match(died.data.detail, /passt/);
  t.diagnostic(`event: ${JSON.stringify(died.data)}`);
  const shown = (await http(socket, 'GET', `/v1/vms/${name}/inspect`)).json;
  assert.equal(shown.phase, 'running', 'the VM keeps running without its NIC\'s backend');
  assert.deepEqual(shown.helpers.map((h: { kind: string; alive: boolean }) => [h.kind, h.alive]), [['passt', false], ['swtpm', true]], 'inspect shows the dead helper');

  const stopped = await http(socket, 'PUT', `/v1/vms/${name}/state?wait=120`, JSON.stringify({ action: 'stop' }));
  assert.equal(stopped.json.operation?.status, 'succeeded', stopped.text);
  await events.next((e) => e.event === 'stopped', 15_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(events.events.filter((e) => e.event === 'helper-died').map((e) => e.data.data.kind), ['passt'], 'swtpm, stopped by teardown, is no news');
  const swtpm = helpers.find((h) => h.kind === 'swtpm')!;
  assert.ok(await waitGone(new NodeFs(), swtpm.proc, 5000));
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  for (const h of helpers) assert.deepEqual(leftovers(h.jailName, env.stateRoot), [], `nothing of ${h.kind}`);
});
