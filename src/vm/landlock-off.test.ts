/** Landlock planned on a kernel without it (issue 18, F5): the jail still starts, and the missing layer is listed as a protection off in the record (inspect) and the start warnings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeFs } from '../sys/index.js';
import { realBackends } from './backends.js';
import { JailerLauncher, jailerConfig, protectionsOffFor } from './jailer.js';
import { VmManager } from './manager.js';
import { openManager } from './open.js';
import { inspectRecord, formatInspection } from './view.js';
import { leftovers, testEnv, vmName } from './testing.js';

test('protectionsOffFor: Landlock is off only when planned and the kernel has none', () => {
  assert.deepEqual(protectionsOffFor({ landlock: { readOnly: [], readWrite: [] } }, 7), []);
  assert.deepEqual(protectionsOffFor({}, 0), []);
  assert.match(protectionsOffFor({ landlock: { readOnly: [], readWrite: [] } }, 0)[0]!, /^Landlock \(planned, but this kernel has none/);
});

test('a VM started where the kernel lacks Landlock says so in its start warnings and in inspect', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv('warden-vm-landlock-');
  const m0 = openManager({ stateDir: env.stateRoot });
  // The only fake: the kernel's Landlock ABI, as the exec helper would report it on an older kernel.
  const backends = { ...realBackends({ stateRoot: env.stateRoot }), jail: new JailerLauncher(jailerConfig(), new NodeFs(), () => 0) };
  const m = new VmManager({ store: m0.store, fs: m0.fs, backends });
  const name = vmName('wdv-noll');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name }));
  const started = await m.start(name);
  assert.ok(started.warnings.some((w) => /^protection off: Landlock/.test(w)), started.warnings.join('\n'));
  const view = await inspectRecord(m.fs, m.store, await m.reconcile(name, true));
  assert.ok(view.protectionsOff.some((p) => p.startsWith('Landlock')), view.protectionsOff.join('; '));
  assert.match(formatInspection(view), /protections off: .*Landlock/);
  await m.kill(name);
  await m.delete(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
