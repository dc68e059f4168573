import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { run, type Io } from '../index.js';
import { GUEST_READY_LINE, leftovers, openManager, testEnv, waitForText } from '../../vm/index.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('warden save NAME FILE, then warden restore FILE: the guest continues (tick counter, no new boot)', { timeout: 180_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv('warden-cli-save-');
  const name = `wcs-${process.pid}`;
  const state = ['--state-dir', env.stateRoot];
  t.after(async () => {
    await run(['kill', name, ...state], capture());
    env.cleanup();
  });
  let io = capture();
  assert.equal(await run(['create', env.specFile({ name, cmdline: 'warden.tick=1' }), ...state], io), 0, io.stderr);
  assert.equal(await run(['start', name, ...state], io = capture()), 0, io.stderr);
  const log = openManager({ stateDir: env.stateRoot }).store.paths(name).serialLog;
  await waitForText(log, 'WARDEN-TICK 2', 90_000);
  const file = join(env.dir, 'saved.state');
  assert.equal(await run(['save', name, file, '--json', ...state], io = capture()), 0, io.stderr);
  const saved = JSON.parse(io.stdout) as { record: { phase: string }; migration: { status: string; totalTimeMs: number } };
  assert.equal(saved.record.phase, 'stopped');
  assert.equal(saved.migration.status, 'completed');
  assert.equal(await run(['save', name, file, ...state], io = capture()), 4, 'a stopped VM cannot be saved');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  const before = await waitForText(log, 'WARDEN-TICK 2', 1000);
  const last = Math.max(...[...before.matchAll(/WARDEN-TICK (\d+)/g)].map((m) => Number(m[1])));

  assert.equal(await run(['restore', file, ...state], io = capture()), 0, io.stderr);
  assert.match(io.stdout, new RegExp(`VM ${name} restored from .*\\(QEMU: completed, loaded in \\d+ ms\\); it is running`));
  const after = (await waitForText(log, `WARDEN-TICK ${last + 2}`, 60_000)).slice(before.length);
  assert.ok(!after.includes(GUEST_READY_LINE), 'no new boot');
  assert.match(after, new RegExp(`WARDEN-TICK ${last + 1}\\b`));
  assert.equal(await run(['restore', env.base, ...state], io = capture()), 1);
  assert.match(io.stderr, /not a warden save file: .*\[VM_RESTORE_FAILED\]/);
});
