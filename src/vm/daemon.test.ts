import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { DaemonService } from './daemon.js';
import type { VmEvent } from './events.js';
import { leftovers, testEnv, vmName } from './testing.js';

const root = process.getuid?.() === 0;
const SKIP = 'needs root: the jailer switches uids and creates cgroups';

function nextEvent(svc: DaemonService, match: (e: VmEvent) => boolean, timeoutMs: number): Promise<VmEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no matching event within ${timeoutMs} ms`)); }, timeoutMs);
    const off = svc.events.subscribe((e) => { if (match(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}

test('daemon service: a QEMU killed with SIGKILL is a stopped event, reason crashed, signal SIGKILL, with no command run; a new daemon adopts a running VM', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-daemon-svc-');
  const opts = { stateDir: env.stateRoot, socket: `${env.dir}/none.sock` };
  let svc = await DaemonService.open(opts);
  const name = vmName('wdd-svc');
  t.after(async () => {
    await svc.kill(name).catch(() => undefined);
    await svc.close().catch(() => undefined);
    env.cleanup();
  });
  const created = await svc.create({ file: env.specFile({ name }) });
  assert.equal(created.owner, 0);
  const started = nextEvent(svc, (e) => e.type === 'started' && e.vm === name, 60_000);
  const r = await svc.start(name);
  assert.equal(r.record.phase, 'running');
  await started;

  // A second daemon on the same root is refused while this one lives.
  await assert.rejects(DaemonService.open(opts), (e: Error & { code?: string }) => e.code === 'VM_BUSY');

  // Restart of the daemon: the VM keeps running and is adopted (pid and QMP).
  await svc.close();
  svc = await DaemonService.open(opts);
  const adopted = await svc.get(name);
  assert.equal(adopted.phase, 'running');
  assert.equal(adopted.run?.qemu.pid, r.record.run?.qemu.pid);
  assert.deepEqual(await svc.qmp(name, 'query-status'), { status: 'running', singlestep: false, running: true });

  // vCPUs stopped behind the verbs' back (raw QMP): the record follows QEMU's STOP and RESUME events.
  const paused = nextEvent(svc, (e) => e.type === 'paused' && e.vm === name, 10_000);
  await svc.qmp(name, 'stop');
  await paused;
  assert.equal((await svc.get(name)).phase, 'paused');
  const resumed = nextEvent(svc, (e) => e.type === 'resumed' && e.vm === name, 10_000);
  await svc.qmp(name, 'cont');
  await resumed;
  assert.equal((await svc.get(name)).phase, 'running');

  const stopped = nextEvent(svc, (e) => e.type === 'stopped' && e.vm === name, 10_000);
  process.kill(adopted.run!.qemu.pid, 'SIGKILL');
  const t0 = performance.now();
  const e = await stopped;
  const ms = performance.now() - t0;
  assert.equal(e.reason, 'crashed');
  assert.equal(e.signal, 'SIGKILL');
  t.diagnostic(`the crash was published ${ms.toFixed(0)} ms after the kill (bench/ measures it)`);
  assert.equal((await svc.get(name)).phase, 'crashed');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('daemon service: autostart at daemon start, and restart: on-failure brings a crashed VM back (restarting event, new QEMU)', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip(SKIP);
  const env = testEnv('warden-daemon-restart-');
  const opts = { stateDir: env.stateRoot, socket: `${env.dir}/none.sock` };
  let svc = await DaemonService.open(opts);
  const name = vmName('wdd-rs');
  t.after(async () => {
    await svc.kill(name).catch(() => undefined);
    await svc.close().catch(() => undefined);
    env.cleanup();
  });
  const file = env.specFile({ name });
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), restart: 'on-failure', autostart: true }));
  await svc.create({ file });
  await svc.close();
  svc = await DaemonService.open(opts); // autostart
  const first = await nextEvent(svc, (e) => e.type === 'started' && e.vm === name, 60_000);
  assert.equal(first.phase, 'running');
  const pid = (await svc.get(name)).run!.qemu.pid;
  const restarting = nextEvent(svc, (e) => e.type === 'restarting' && e.vm === name, 10_000);
  const again = nextEvent(svc, (e) => e.type === 'started' && e.vm === name && e.seq > first.seq, 60_000);
  process.kill(pid, 'SIGKILL');
  const r = await restarting;
  assert.equal(r.reason, 'crashed');
  assert.deepEqual(r.data, { attempt: 1, delayMs: 1000 });
  await again;
  const now = await svc.get(name);
  assert.equal(now.phase, 'running');
  assert.notEqual(now.run!.qemu.pid, pid);
  await svc.stop(name, { force: true });
  assert.equal((await svc.get(name)).lastExit?.reason, 'stopped', 'a requested stop is not restarted');
  const startedPaused = nextEvent(svc, (e) => e.type === 'started' && e.vm === name && e.phase === 'paused', 30_000);
  assert.equal((await svc.start(name, { paused: true })).record.phase, 'paused');
  await startedPaused;
  assert.equal(((await svc.qmp(name, 'query-status')) as { running: boolean }).running, false, 'started paused: the vCPUs wait');
  assert.equal((await svc.resume(name)).phase, 'running');
});

test('daemon service: a VM whose lock a command started before the daemon still holds is adopted once that command is done', { timeout: 30_000 }, async (t) => {
  const env = testEnv('warden-daemon-busy-');
  t.after(() => env.cleanup());
  const { StateStore } = await import('./store.js');
  const { NodeFs } = await import('../sys/index.js');
  const { openManager } = await import('./open.js');
  const name = vmName('wdd-busy');
  await openManager({ stateDir: env.stateRoot }).create(env.specFile({ name }));
  const cliLock = await new StateStore(env.stateRoot, new NodeFs()).lock(name, 'start'); // a CLI command in direct mode
  let opened = false;
  const opening = DaemonService.open({ stateDir: env.stateRoot, socket: `${env.dir}/none.sock` }).then((s) => { opened = true; return s; });
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(opened, false, 'the daemon waits for the command');
  await cliLock.release();
  const svc = await opening;
  t.after(() => svc.close());
  assert.equal((await svc.get(name)).phase, 'created');
});
