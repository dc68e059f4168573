/** wardend's save/restore routes, driven by the CLI (which sends every verb to the daemon that owns the state root). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/cli/index.js';
import { GUEST_READY_LINE, waitForText } from '../../src/vm/index.js';
import { capture, daemonFixture, http } from './helpers.js';

test('warden save/restore through wardend (POST /v1/vms/NAME/save, POST /v1/restore): the guest continues', { timeout: 240_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const { env, socket, name } = await daemonFixture(t, 'warden-api-state-', 'wda-save');
  const state = ['--state-dir', env.stateRoot];
  let io = capture();
  assert.equal(await run(['create', env.specFile({ name, cmdline: 'warden.tick=1' }), ...state], io), 0, io.stderr);
  assert.equal(await run(['start', name, ...state], io = capture()), 0, io.stderr);
  const log = join(env.stateRoot, 'vms', name, 'serial.log');
  await waitForText(log, 'WARDEN-TICK 2', 90_000);
  const file = join(env.dir, 'api.state');
  assert.equal(await run(['save', name, file, '--json', ...state], io = capture()), 0, io.stderr + io.stdout);
  const saved = JSON.parse(io.stdout) as { record: { phase: string; saved?: { file: string } }; migration: { status: string } };
  assert.equal(saved.record.phase, 'stopped');
  assert.equal(saved.record.saved?.file, file);
  assert.equal(saved.migration.status, 'completed');
  const relative = await http(socket, 'POST', `/v1/vms/${name}/save?wait=60`, JSON.stringify({ file: 'x.state' }));
  assert.equal(relative.json.error.code, 'API_INVALID_REQUEST', relative.text);
  const last = Math.max(...[...readFileSync(log, 'latin1').matchAll(/WARDEN-TICK (\d+)/g)].map((m) => Number(m[1])));

  assert.equal(await run(['restore', file, '--json', ...state], io = capture()), 0, io.stderr + io.stdout);
  assert.equal((JSON.parse(io.stdout) as { record: { phase: string } }).record.phase, 'running');
  const after = await waitForText(log, `WARDEN-TICK ${last + 2}`, 60_000);
  assert.equal(after.split(GUEST_READY_LINE).length - 1, 1, 'one boot in the log');
  const bad = await http(socket, 'POST', '/v1/restore?wait=60', JSON.stringify({ file: env.base, name }));
  assert.equal(bad.json.error.code, 'VM_RESTORE_FAILED', bad.text);
});
