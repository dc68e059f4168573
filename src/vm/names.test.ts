/** @module vm/names.test: VM names are per state root, and so are the host-wide names a running VM takes (jail, cgroup, TAP): two VMs of one name run under two state roots at once and each stops clean. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostWideName } from '../plan/index.js';
import { stateRootScope } from './facts.js';
import { openManager } from './open.js';
import { GUEST_READY_LINE } from './guest.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

test('plan/scope: the host-wide name carries the state root id and stays a valid jail name', () => {
  assert.equal(hostWideName('web1'), 'web1', 'no scope: the name plans had before');
  assert.equal(hostWideName('web1', 'abcde'), 'web1-abcde');
  const long = 'a'.repeat(63);
  const scoped = hostWideName(long, 'abcde');
  assert.equal(scoped.length, 63);
  assert.match(scoped, /^[a-z0-9][a-z0-9-]{0,62}$/);
  assert.notEqual(scoped, hostWideName(`${'a'.repeat(62)}b`, 'abcde'), 'two long names cut alike stay apart');
  assert.notEqual(stateRootScope('/var/lib/warden'), stateRootScope('/var/lib/warden2'));
  assert.match(stateRootScope('/x'), /^[a-z2-7]{5}$/);
});

test('a VM of the same name runs under two state roots at once, each with its own jail, cgroup and uid lease; each stops clean', { timeout: 180_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: only jailed VMs take host-wide names');
  const env = testEnv();
  const rootA = join(env.dir, 'root-a');
  const rootB = join(env.dir, 'root-b');
  const a = openManager({ stateDir: rootA });
  const b = openManager({ stateDir: rootB });
  const name = vmName('wdv-samename');
  t.after(async () => {
    await b.kill(name).catch(() => undefined);
    await a.kill(name).catch(() => undefined);
    env.cleanup();
  });
  await a.create(env.specFile({ name }));
  const first = await a.start(name);
  const diskB = join(env.dir, 'b.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', diskB, '64M']);
  await b.create(env.specFile({ name, disk: diskB }));
  const second = await b.start(name);
  const runA = first.record.run!;
  const runB = second.record.run!;
  assert.notEqual(runA.jailName, runB.jailName);
  assert.equal(runA.jailName, hostWideName(name, stateRootScope(rootA)));
  assert.equal(runB.jailName, hostWideName(name, stateRootScope(rootB)));
  await waitForText(a.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
  await waitForText(b.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
  assert.equal((await a.reconcile(name, true)).phase, 'running');
  assert.equal((await b.reconcile(name, true)).phase, 'running');
  assert.ok(readFileSync(`/proc/${runA.qemu.pid}/cgroup`, 'utf8').includes(`/${runA.jailName}`), 'A\'s QEMU in A\'s cgroup');
  await a.stop(name, { force: true });
  assert.deepEqual(leftovers(name, rootA), [], 'A left nothing, while B runs on');
  assert.equal((await b.reconcile(name, true)).phase, 'running');
  assert.equal((await b.reconcile(name, true)).run?.qemu.pid, runB.qemu.pid);
  await b.stop(name, { force: true });
  assert.deepEqual(leftovers(name, rootB), []);
});
