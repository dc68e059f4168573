import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE } from './guest.js';
import { isVmError } from './errors.js';
import { openManager } from './open.js';
import { DaemonService } from './daemon.js';
import { START_STEPS } from './start.js';
import { outsideView } from './outside.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

const root = process.getuid?.() === 0;
const SKIP = 'needs root: the jailer switches uids and creates cgroups';

const ticks = (s: string): number[] => [...s.matchAll(/WARDEN-TICK (\d+)/g)].map((m) => Number(m[1]));

test('save to a manager-opened file, restore: the tick counter continues without a new boot, restored QEMU jailed', { timeout: 240_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-save-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-save');
  t.after(async () => {
    for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
    env.cleanup();
  });
  await m.create(env.specFile({ name, cmdline: 'warden.tick=1' }));
  await m.start(name);
  const log = m.store.paths(name).serialLog;
  await waitForText(log, 'WARDEN-TICK 3', 90_000);

  const file = join(env.dir, 'vm.state');
  const saved = await m.save(name, file);
  assert.equal(saved.migration.status, 'completed');
  assert.equal(saved.record.phase, 'stopped');
  assert.equal(saved.record.saved?.file, file);
  assert.equal(statSync(file).mode & 0o777, 0o600, 'the save file is the manager\'s, 0600');
  assert.ok(statSync(file).size > 1 << 20, 'the file holds the guest\'s RAM');
  assert.deepEqual(leftovers(name, env.stateRoot), [], 'QEMU is gone after save');
  const before = readFileSync(log, 'latin1');
  const last = Math.max(...ticks(before));
  await assert.rejects(m.save(name, file), (e) => isVmError(e, 'VM_INVALID_STATE'), 'a stopped VM cannot be saved');

  const r = await m.restore(file);
  assert.equal(r.record.name, name);
  assert.equal(r.record.phase, 'running');
  const start = START_STEPS.map((s) => s.name);
  assert.deepEqual(r.run.done, [...start.slice(0, start.indexOf('cont')), 'incoming', 'cont'], 'the start steps, and the stream loaded before cont');
  assert.equal(r.migration?.status, 'completed');
  assert.equal(r.record.saved, undefined);
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { argv: string[] };
  assert.deepEqual(plan.argv.slice(plan.argv.indexOf('-incoming'), plan.argv.indexOf('-incoming') + 2), ['-incoming', 'defer']);
  const after = await waitForText(log, `WARDEN-TICK ${last + 3}`, 60_000);
  const resumed = after.slice(before.length);
  assert.ok(!resumed.includes(GUEST_READY_LINE), 'no second boot');
  assert.ok(!/Linux version/.test(resumed), 'no kernel boot banner after the restore');
  assert.equal(ticks(resumed)[0], last + 1, 'the counter continues where it was saved');

  const rec = await m.reconcile(name, true);
  const view = await outsideView(m.fs, rec.run!.qemu.pid);
  assert.ok(view !== null);
  assert.notEqual(view.uid, 0, 'restored QEMU runs as its own uid');
  assert.equal(view.capEff, '0000000000000000');
  assert.equal(view.noNewPrivs, true);
  for (const ns of ['mnt', 'pid', 'net']) assert.ok(view.ownNamespaces.includes(ns), `own ${ns} namespace`);
  assert.ok(!readFileSync(`/proc/${rec.run!.qemu.pid}/cmdline`, 'latin1').includes(file), 'QEMU was never given the file\'s name');

  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);

  // Under another name, with no VM of that name: defined from the file's spec, then restored.
  await m.delete(name);
  const other = vmName('wdv-saved2');
  const r2 = await m.restore(file, { name: other });
  assert.equal(r2.record.phase, 'running');
  assert.equal((r2.record.spec as { name?: string }).name, other);
  const log2 = m.store.paths(other).serialLog;
  const t2 = await waitForText(log2, `WARDEN-TICK ${last + 2}`, 60_000);
  assert.ok(!t2.includes(GUEST_READY_LINE) && ticks(t2)[0] === last + 1, 'the second restore continues from the same point');
  await m.kill(other);
  assert.deepEqual(leftovers(other, env.stateRoot), []);
});

test('restore refuses a file that is not a save file and defines nothing', { timeout: 60_000 }, async (t) => {
  const env = testEnv('warden-save-bad-');
  t.after(() => env.cleanup());
  const m = openManager({ stateDir: env.stateRoot });
  await assert.rejects(m.restore(env.base), (e) => isVmError(e, 'VM_RESTORE_FAILED') && /not a warden save file/.test(e.message));
  assert.deepEqual(await m.store.list(), [], 'nothing was defined');
  assert.ok(existsSync(env.base));
});

test('the daemon service saves and restores under the VM\'s supervisor: the save is a stop, not a crash', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-save-daemon-');
  const svc = await DaemonService.open({ stateDir: env.stateRoot, socket: `${env.dir}/none.sock` });
  const name = vmName('wdv-dsave');
  t.after(async () => {
    await svc.kill(name).catch(() => undefined);
    await svc.close().catch(() => undefined);
    env.cleanup();
  });
  await svc.create({ file: env.specFile({ name, cmdline: 'warden.tick=1' }) });
  await svc.start(name);
  const log = join(env.stateRoot, 'vms', name, 'serial.log');
  await waitForText(log, 'WARDEN-TICK 2', 90_000);
  const file = join(env.dir, 'd.state');
  const saved = await svc.save!(name, file);
  assert.equal(saved.record.phase, 'stopped');
  await new Promise((r) => setTimeout(r, 500)); // the supervisor sees QEMU's exit
  const rec = await svc.get(name);
  assert.equal(rec.phase, 'stopped', 'the supervisor does not call the save a crash');
  assert.equal(rec.saved?.file, file);
  const last = Math.max(...ticks(readFileSync(log, 'latin1')));
  const r = await svc.restore!(file);
  assert.equal(r.record.phase, 'running');
  const after = await waitForText(log, `WARDEN-TICK ${last + 2}`, 60_000);
  assert.equal(after.split(GUEST_READY_LINE).length - 1, 1, 'one boot in the log');
  await svc.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
