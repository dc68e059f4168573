import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openManager } from './open.js';
import { leftovers, planTaps, testEnv, waitForText } from './testing.js';

test('two jailed VMs on a Linux bridge ping each other through TAP fds; stopping them removes the TAPs', { timeout: 150_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root for bridges, TAPs and the jailer');
  const bridge = `wdvbr${process.pid % 10000}`;
  const add = spawnSync('ip', ['link', 'add', bridge, 'type', 'bridge'], { encoding: 'utf8' });
  if (add.status !== 0) return t.skip(`cannot create a bridge here: ${add.stderr.trim()}`);
  spawnSync('ip', ['link', 'set', bridge, 'up']);
  const env = testEnv('warden-vm-net-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => {
    for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
    spawnSync('ip', ['link', 'delete', bridge]);
    env.cleanup();
  });
  const net = [{ name: 'n0', type: 'bridge', bridge }];
  // Each VM gets its own overlay over the shared read-only base.
  const overlay = (n: string): string => {
    const p = join(env.dir, `${n}.qcow2`);
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', env.base, '-F', 'qcow2', p]);
    return p;
  };
  await m.create(env.specFile({ name: 'wdv-net-a', networks: net, disk: overlay('a'), cmdline: 'warden.ip=10.77.0.1/24' }));
  await m.create(env.specFile({ name: 'wdv-net-b', networks: net, disk: overlay('b'), cmdline: 'warden.ip=10.77.0.2/24 warden.ping=10.77.0.1' }));
  await m.start('wdv-net-a');
  await m.start('wdv-net-b');
  const taps = ['wdv-net-a', 'wdv-net-b'].flatMap((n) => planTaps(m.store.paths(n).dir));
  assert.equal(taps.length, 2);
  const log = await waitForText(m.store.paths('wdv-net-b').serialLog, 'WARDEN-PING-', 90_000);
  assert.match(log, /WARDEN-PING-OK 10\.77\.0\.1/);
  for (const n of ['wdv-net-a', 'wdv-net-b']) assert.equal((await m.stop(n, { timeoutS: 60 })).lastExit?.reason, 'stopped');
  assert.deepEqual([...leftovers('wdv-net-a', env.stateRoot, taps), ...leftovers('wdv-net-b', env.stateRoot, taps)], []);
});
