/** @module vm/names.test: VM names are per state root, but a running VM's jail, cgroup and devices are host-wide: a second VM of the same name is refused and the first is left alone. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openManager } from './open.js';
import { isVmError } from './errors.js';
import { leftovers, testEnv, vmName } from './testing.js';

test('a VM of the same name under another state root is refused with VM_NAME_IN_USE; the running one runs on; each stops clean', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: only jailed VMs share host-wide names');
  const env = testEnv();
  const a = openManager({ stateDir: join(env.dir, 'root-a') });
  const b = openManager({ stateDir: join(env.dir, 'root-b') });
  const name = vmName('wdv-samename');
  t.after(async () => {
    await b.kill(name).catch(() => undefined);
    await a.kill(name).catch(() => undefined);
    env.cleanup();
  });
  await a.create(env.specFile({ name }));
  const first = await a.start(name);
  await b.create(env.specFile({ name, disk: env.base }));
  await assert.rejects(b.start(name), (e: unknown) => {
    assert.ok(isVmError(e) && e.code === 'VM_NAME_IN_USE', String(e));
    assert.match(e.message, /already runs on this host under another state root/);
    return true;
  });
  const rec = await a.reconcile(name, true);
  assert.equal(rec.phase, 'running', 'the failed start of the other VM did not tear this one down');
  assert.equal(rec.run?.qemu.pid, first.record.run?.qemu.pid);
  const other = await b.reconcile(name, false);
  assert.deepEqual([other.phase, other.lastExit?.reason], ['stopped', 'start-failed']);
  await a.stop(name, { timeoutS: 30 });
  assert.deepEqual(leftovers(name, join(env.dir, 'root-a')), []);
  assert.deepEqual(leftovers(name, join(env.dir, 'root-b')), []);
  // with the name free again, the other state root's VM starts
  await b.start(name);
  assert.equal((await b.reconcile(name, true)).phase, 'running');
  await b.kill(name);
  assert.deepEqual(leftovers(name, join(env.dir, 'root-b')), []);
});
