import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../main.js';
import type { Io } from '../output.js';
import { QmpClient } from '../../qmp/index.js';
import { startQemu } from '../../qmp/testing/index.js';

function capture(): Io & { text: () => string; errors: () => string } {
  let out = '';
  let err = '';
  return { out: (s) => { out += `${s}\n`; }, err: (s) => { err += `${s}\n`; }, text: () => out, errors: () => err };
}

test('warden qmp exec runs a command on a real QEMU and reports refusals with their codes', async (t) => {
  const qemu = await startQemu();
  t.after(() => qemu.kill());
  const sock = qemu.sockets[0]!;
  const ok = capture();
  assert.equal(await run(['qmp', 'exec', sock, 'query-status'], ok), 0);
  assert.equal(JSON.parse(ok.text()).status, 'prelaunch');

  const refused = capture();
  assert.equal(await run(['qmp', 'exec', sock, 'device_del', '{"id": "nope"}', '--json'], refused), 1, 'QEMU refusing a command is not QEMU dying');
  const body = JSON.parse(refused.text()).error;
  assert.equal(body.code, 'QMP_COMMAND_FAILED');
  assert.equal(body.context.errorClass, 'DeviceNotFound');

  const bad = capture();
  assert.equal(await run(['qmp', 'exec', sock, 'device_del', '{id: nope}'], bad), 2);
  assert.match(bad.errors(), /not JSON/);
});

test('warden qmp events prints the events that arrive', async (t) => {
  const qemu = await startQemu({ monitors: 2 });
  t.after(() => qemu.kill());
  const io = capture();
  let done = false;
  const events = run(['qmp', 'events', qemu.sockets[1]!, 'RESUME', '--count', '1', '--timeout', '20000'], io).finally(() => { done = true; });
  const client = await QmpClient.connect({ path: qemu.sockets[0]! });
  t.after(() => client.close());
  // The events command subscribes asynchronously: keep producing RESUMEs until it has one.
  while (!done) {
    await client.execute('cont');
    await client.execute('stop');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await events, 0);
  assert.equal(JSON.parse(io.text().trim()).event, 'RESUME');
});
