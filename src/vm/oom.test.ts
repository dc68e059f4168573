import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { waitGone } from './teardown.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

test('a guest that fills its memory past the cgroup limit: QEMU is OOM-killed and the VM says so', { timeout: 150_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer creates the memory cgroup');
  const env = testEnv('warden-vm-oom-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const name = vmName('wdv-oom');
  const file = env.specFile({ name, memory: '512Mi' });
  const spec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  spec['limits'] = { memory: '520Mi' }; // barely above guest RAM: QEMU's own overhead does not fit
  writeFileSync(file, JSON.stringify(spec));
  await m.create(file);
  const rec = (await m.start(name)).record;
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
  const sock = createConnection({ path: m.store.paths(name).serialSocket });
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => undefined);
  sock.write('mkdir -p /mnt && mount -t tmpfs -o size=490m tmpfs /mnt && dd if=/dev/zero of=/mnt/fill bs=1M count=480\n');
  const gone = await waitGone(m.fs, rec.run!.qemu, 120_000);
  sock.destroy();
  assert.ok(gone, 'QEMU was killed');
  const after = await m.reconcile(name);
  assert.deepEqual([after.phase, after.lastExit?.reason, after.lastExit?.signal], ['crashed', 'oom', 'SIGKILL']);
  assert.match(after.lastExit?.detail ?? '', /OOM killer/);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
