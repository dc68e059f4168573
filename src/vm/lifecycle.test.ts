import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { GUEST_READY_LINE } from './guest.js';
import { isVmError } from './errors.js';
import { openManager } from './open.js';
import { hostPathsOpen, outsideView } from './outside.js';
import { leftovers, testEnv, vmName, waitForText, type TestEnv } from './testing.js';
import { VmManager } from './manager.js';
import { realBackends } from './backends.js';
import { waitGone } from './teardown.js';

const root = process.getuid?.() === 0;
const SKIP = 'needs root: the jailer switches uids and creates cgroups';

function setup(t: { after(fn: () => void | Promise<void>): void }): { env: TestEnv; m: VmManager } {
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => {
    for (const name of await m.store.list()) await m.kill(name).catch(() => undefined);
    env.cleanup();
  });
  return { env, m };
}

async function qmpStatus(m: VmManager, name: string): Promise<string> {
  return ((await m.qmp(name, 'query-status')) as { status: string }).status;
}

test('run, ready line, seen from outside fully confined, pause/resume in QMP, graceful stop, nothing leaked', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const { env, m } = setup(t);
  const name = vmName('wdv-life');
  await m.create(env.specFile({ name }));
  const started = await m.start(name);
  assert.equal(started.record.phase, 'running');
  assert.deepEqual(started.run.done, ['facts', 'plan', 'seed', 'claim', 'network', 'open', 'helpers', 'jail', 'qmp', 'cont']);
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);

  const rec = await m.reconcile(name, true);
  const view = await outsideView(m.fs, rec.run!.qemu.pid);
  assert.ok(view !== null);
  assert.notEqual(view.uid, 0, 'QEMU runs as its own uid');
  assert.equal(view.uid, rec.run!.uid);
  assert.equal(view.capEff, '0000000000000000');
  assert.equal(view.noNewPrivs, true);
  assert.equal(view.seccomp, 2);
  for (const ns of ['mnt', 'pid', 'net']) assert.ok(view.ownNamespaces.includes(ns), `own ${ns} namespace (has ${view.ownNamespaces.join(',')})`);
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as {
    fds: Array<{ path?: string }>; jail: { identity: { uid?: number; lease?: boolean } }; manifest: Array<{ kind: string; resource: string }>;
  };
  // The plan states the policy; the leased uid is a runtime fact of the run record.
  assert.deepEqual(plan.jail.identity, { lease: true }, 'the stored plan keeps the uid policy');
  assert.match(plan.manifest.find((e) => e.kind === 'uid')?.resource ?? '', /^leased from \d+-\d+$/);
  assert.equal(rec.run!.gid, view.gid);
  const passed = new Set([...plan.fds.flatMap((f) => (f.path === undefined ? [] : [f.path])), m.store.paths(name).qemuLog]);
  const jailDev = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);
  const stray = hostPathsOpen(view).filter((p) => !passed.has(p) && !p.startsWith('/usr/') && !jailDev.has(p));
  assert.deepEqual(stray, [], 'QEMU holds no host path but its passed fds and /usr');

  assert.equal(await qmpStatus(m, name), 'running');
  assert.equal((await m.pause(name)).phase, 'paused');
  assert.equal(await qmpStatus(m, name), 'paused');
  assert.equal((await m.reconcile(name, true)).phase, 'paused');
  assert.equal((await m.resume(name)).phase, 'running');
  assert.equal(await qmpStatus(m, name), 'running');

  const stopped = await m.stop(name, { timeoutS: 60 });
  assert.equal(stopped.phase, 'stopped');
  assert.equal(stopped.lastExit?.reason, 'stopped');
  assert.match(stopped.lastExit?.detail ?? '', /guest powered off/);
  assert.equal(stopped.lastExit?.code, 0);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  await assert.rejects(m.pause(name), (e) => isVmError(e, 'VM_INVALID_STATE') && e.message.includes(`cannot pause VM ${name}: it is stopped`));
});

test('kill -9 of QEMU is recorded as crashed with the signal; a second VM on the same writable disk is refused', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const { env, m } = setup(t);
  const [crash, twin] = [vmName('wdv-crash'), vmName('wdv-twin')];
  await m.create(env.specFile({ name: crash }));
  await m.create(env.specFile({ name: twin }));
  const rec = (await m.start(crash)).record;

  await assert.rejects(m.start(twin), (e) => {
    assert.ok(isVmError(e, 'VM_DISK_IN_USE'), String(e));
    assert.match(e.message, new RegExp(`cannot start VM ${twin}: .*disk\\.qcow2 is written by VM ${crash}`));
    return true;
  });
  const refused = await m.reconcile(twin);
  assert.equal(refused.lastExit?.reason, 'start-failed');
  assert.deepEqual(leftovers(twin, env.stateRoot), []);

  process.kill(rec.run!.qemu.pid, 'SIGKILL');
  assert.ok(await waitGone(m.fs, rec.run!.qemu, 30_000), 'QEMU died');
  // The next command (any) notices and cleans up.
  const [after] = await m.list();
  assert.equal(after?.name, crash);
  assert.equal(after?.phase, 'crashed');
  assert.equal(after?.lastExit?.reason, 'crashed');
  assert.equal(after?.lastExit?.signal, 'SIGKILL');
  assert.match(after?.lastExit?.detail ?? '', /killed by SIGKILL/);
  assert.deepEqual(leftovers(crash, env.stateRoot), []);
  // Now the disk is free for the twin.
  const twinRun = (await m.start(twin)).record;
  assert.equal(twinRun.phase, 'running');
  // The guest powers itself off while no manager watches: the next command says so.
  await waitForText(m.store.paths(twin).serialLog, GUEST_READY_LINE, 60_000);
  const sock = createConnection({ path: m.store.paths(twin).serialSocket });
  await new Promise((r) => sock.once('connect', r));
  sock.write('poweroff\n');
  assert.ok(await waitGone(m.fs, twinRun.run!.qemu, 30_000), 'the guest powered off');
  sock.destroy();
  const off = await m.reconcile(twin);
  assert.deepEqual([off.phase, off.lastExit?.reason, off.lastExit?.code], ['stopped', 'poweroff', 0]);
  assert.match(off.lastExit?.detail ?? '', /the guest powered off/);
  assert.deepEqual(leftovers(twin, env.stateRoot), []);
  assert.equal((await m.start(twin)).record.phase, 'running');
  assert.equal((await m.kill(twin)).lastExit?.reason, 'killed');
  assert.deepEqual(leftovers(twin, env.stateRoot), []);
});

test('QEMU dying while starting gives VM_QEMU_DIED with its own words, and nothing is left', { timeout: 60_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const { env, m } = setup(t);
  const name = vmName('wdv-die');
  // Far more guest memory than the host can map: QEMU exits before its monitor answers.
  await m.create(env.specFile({ name, memory: '64Ti' }));
  await assert.rejects(m.start(name), (e) => {
    assert.ok(isVmError(e, 'VM_QEMU_DIED'), String(e));
    assert.ok(e.message.includes(`QEMU of VM ${name} exited while starting: cannot set up guest memory`), e.message);
    return true;
  });
  const rec = await m.reconcile(name);
  assert.equal(rec.lastExit?.reason, 'start-failed');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('a stop whose QMP monitor does not answer escalates to SIGKILL and says so', { timeout: 60_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const { env, m } = setup(t);
  const name = vmName('wdv-mute');
  await m.create(env.specFile({ name }));
  await m.start(name);
  // Fault injection: a second manager on the same state whose QMP connections all fail.
  const real = realBackends({ stateRoot: env.stateRoot });
  const mute = new VmManager({ store: m.store, fs: m.fs, backends: { ...real, qmpConnect: async () => { throw new Error('monitor hung up'); } } });
  const out = await mute.stop(name, { timeoutS: 1 });
  assert.deepEqual([out.phase, out.lastExit?.reason], ['stopped', 'killed']);
  assert.match(out.lastExit?.detail ?? '', /escalated to SIGKILL/);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
