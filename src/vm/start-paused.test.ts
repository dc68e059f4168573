import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { START_STEPS } from './start.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

const root = process.getuid?.() === 0;

test('start {paused}: every step but cont (QEMU prelaunch, phase paused, the guest silent), then cont runs it', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => {
    for (const name of await m.store.list()) await m.kill(name).catch(() => undefined);
    env.cleanup();
  });
  const name = vmName('wdv-paused');
  await m.create(env.specFile({ name }));
  const started = await m.start(name, { paused: true });
  assert.equal(started.record.phase, 'paused');
  assert.deepEqual(started.run.done, START_STEPS.map((s) => s.name).filter((n) => n !== 'cont'));
  assert.equal(((await m.qmp(name, 'query-status')) as { status: string }).status, 'prelaunch');
  assert.equal((await m.reconcile(name, true)).phase, 'paused', 'a deep reconcile keeps it paused');
  const log = m.store.paths(name).serialLog;
  assert.ok(!existsSync(log) || !readFileSync(log, 'latin1').includes(GUEST_READY_LINE), 'no vCPU ran');
  assert.equal((await m.cont(name)).phase, 'running');
  await waitForText(log, GUEST_READY_LINE, 60_000);
  assert.equal((await m.kill(name)).lastExit?.reason, 'killed');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
