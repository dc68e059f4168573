/**
 * The Task service's own logic against a scripted VmService (fault injection: a start that
 * fails, an exit nobody asked for): event order, exit statuses, refusals, and that a failed
 * Create leaves no task, no VM record and no rootfs mount. The real thing runs in test/shim.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessRunner } from '../sys/index.js';
import type { VmRecord, VmService } from '../vm/index.js';
import { DEFAULT_GOCODE, loadProtos } from './protos.js';
import { TaskService } from './tasks.js';

const skip = existsSync(`${DEFAULT_GOCODE}/github.com/containerd/containerd/runtime/v2/task/shim.proto`) ? undefined : 'golang-github-containerd-containerd-dev is not installed';

function bundle(dir: string): string {
  const b = join(dir, 'bundle');
  mkdirSync(join(b, 'rootfs', 'warden'), { recursive: true });
  mkdirSync(join(b, 'rootfs', 'boot'));
  mkdirSync(join(dir, 'work'));
  symlinkSync(join(dir, 'work'), join(b, 'work'));
  writeFileSync(join(b, 'rootfs', 'boot', 'k'), '');
  writeFileSync(join(b, 'rootfs', 'warden', 'vm.yaml'), 'apiVersion: warden/v1\nname: x\nboot: { kernel: /boot/k }\n');
  writeFileSync(join(b, 'config.json'), JSON.stringify({ root: { path: 'rootfs' } }));
  return b;
}

/** A VmService whose records are scripted; `fail` makes start throw. */
function fakeVms(o: { fail?: boolean } = {}) {
  const calls: string[] = [];
  let rec: VmRecord | null = null;
  const now = (): string => new Date().toISOString();
  const set = (r: Partial<VmRecord>): VmRecord => (rec = { ...rec!, ...r, updatedAt: now() });
  const vms = {
    async create(_src: unknown, c: { name?: string }) { calls.push('create'); rec = { version: 1, name: c.name!, phase: 'created', spec: {}, createdAt: now(), updatedAt: now() }; return rec; },
    async start(_n: string, s: { paused?: boolean }) {
      calls.push(`start paused=${String(s.paused)}`);
      if (o.fail) { set({ phase: 'stopped', lastExit: { reason: 'start-failed', at: now(), detail: 'boom' } }); throw Object.assign(new Error('QEMU said no'), { code: 'VM_QEMU_DIED' }); }
      return { record: set({ phase: 'paused', run: { qemu: { pid: 4242, startTime: 1 }, uid: 1, gid: 1, accel: 'tcg', startedAt: now(), jailName: 'j', cgroups: [], protectionsOff: [] } }), done: [], timings: {}, warnings: [] };
    },
    async resume() { calls.push('resume'); return set({ phase: 'running' }); },
    async pause() { calls.push('pause'); return set({ phase: 'paused' }); },
    async kill() { calls.push('kill'); const r = set({ phase: 'stopped', lastExit: { reason: 'killed', at: now(), code: null, signal: 'SIGKILL', detail: 'killed' } }); delete r.run; return r; },
    async get() { if (rec === null) throw Object.assign(new Error('no VM'), { code: 'VM_NOT_FOUND' }); return rec; },
    async delete(_n: string, d?: { force?: boolean }) { calls.push(`delete${d?.force ? ' force' : ''}`); rec = null; },
    async qmp(_n: string, cmd: string) { calls.push(`qmp ${cmd}`); return {}; },
  };
  return {
    vms: vms as unknown as VmService, calls,
    powerOff: () => set({ phase: 'stopped', lastExit: { reason: 'poweroff', at: now(), code: 0, signal: null, detail: 'the guest powered off' } }),
    oomKilled: () => set({ phase: 'crashed', lastExit: { reason: 'oom', at: now(), code: null, signal: 'SIGKILL', detail: 'the OOM killer' } }),
  };
}

function service(t: { after(fn: () => void): void }, vms: VmService) {
  const dir = mkdtempSync(join(tmpdir(), 'wsh-tasks-'));
  const events: string[] = [];
  const runs: string[] = [];
  const runner: ProcessRunner = { run: async (argv) => { runs.push(argv[0]!); return { code: 0, signal: null, stdout: '', stderr: '' }; } };
  const svc = new TaskService({
    vms, paths: (vm) => ({ serialLog: join(dir, `${vm}.log`) }) as never, protos: loadProtos(), runner,
    publisher: { publish: (_ns, topic, _type, e) => { events.push(`${topic}${'exitStatus' in e ? ` ${String(e['exitStatus'])}` : ''}`); }, flush: async () => undefined },
    netns: { register: () => undefined, forget: () => undefined }, defaultNamespace: 'default', shimDir: dir, log: () => undefined,
  });
  t.after(() => { svc.close(); rmSync(dir, { recursive: true, force: true }); });
  const h = svc.handlers();
  const call = (m: string, req: Record<string, unknown>) => h[m]!(req, { 'containerd-namespace-ttrpc': 'ns1' });
  return { svc, call, events, runs, b: bundle(dir) };
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

test('create paused, start = resume, SIGKILL: exit 137 published once, Wait answers, delete forgets the VM', { skip }, async (t) => {
  const f = fakeVms();
  const s = service(t, f.vms);
  const mounts = [{ type: 'bind', source: '/x', options: ['ro'] }];
  assert.deepEqual(await s.call('Create', { id: 'a', bundle: s.b, rootfs: mounts }), { pid: 4242 });
  assert.equal((await s.call('State', { id: 'a' }))['status'], 'CREATED');
  await assert.rejects(s.call('Pause', { id: 'a' }), code('SHIM_INVALID_STATE'));
  await s.call('Start', { id: 'a' });
  await assert.rejects(s.call('Start', { id: 'a' }), code('SHIM_INVALID_STATE'));
  await assert.rejects(s.call('Delete', { id: 'a' }), code('SHIM_INVALID_STATE'), 'a running task is not deleted');
  const wait = s.call('Wait', { id: 'a' });
  await s.call('Kill', { id: 'a', signal: 9 });
  assert.equal((await wait)['exitStatus'], 137);
  await assert.rejects(s.call('Kill', { id: 'a', signal: 9 }), code('SHIM_NOT_FOUND'), 'process already finished');
  assert.equal((await s.call('Delete', { id: 'a' }))['exitStatus'], 137);
  await assert.rejects(s.call('State', { id: 'a' }), code('SHIM_NOT_FOUND'));
  assert.deepEqual(f.calls, ['delete force', 'create', 'start paused=true', 'resume', 'kill', 'delete']);
  assert.deepEqual(s.events, ['/tasks/create', '/tasks/start', '/tasks/exit 137', '/tasks/delete 137']);
  assert.deepEqual(s.runs, ['mount', 'umount'], 'the rootfs is mounted and unmounted (no writable disk, so no overlay)');
});

test('a guest that powers off on its own: the watcher publishes exit 0; SIGTERM presses the power button', { skip }, async (t) => {
  const f = fakeVms();
  const s = service(t, f.vms);
  await s.call('Create', { id: 'b', bundle: s.b });
  await s.call('Start', { id: 'b' });
  await s.call('Kill', { id: 'b', signal: 15 });
  for (let i = 0; i < 50 && !f.calls.includes('qmp system_powerdown'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(f.calls.includes('qmp system_powerdown'));
  f.powerOff();
  assert.equal((await s.call('Wait', { id: 'b' }))['exitStatus'], 0);
  assert.deepEqual(s.events, ['/tasks/create', '/tasks/start', '/tasks/exit 0']);
});

test('a Create whose start fails leaves no task, no VM record and no mount', { skip }, async (t) => {
  const f = fakeVms({ fail: true });
  const s = service(t, f.vms);
  await assert.rejects(s.call('Create', { id: 'c', bundle: s.b, rootfs: [{ type: 'bind', source: '/x', options: [] }] }), /QEMU said no/);
  await assert.rejects(s.call('State', { id: 'c' }), code('SHIM_NOT_FOUND'));
  assert.deepEqual(f.calls.slice(-1), ['delete force']);
  assert.deepEqual(s.runs, ['mount', 'umount']);
  assert.deepEqual(s.events, [], 'nothing was announced');
});

test('an OOM kill is /tasks/oom, then /tasks/exit 137', { skip }, async (t) => {
  const f = fakeVms();
  const s = service(t, f.vms);
  await s.call('Create', { id: 'o', bundle: s.b });
  await s.call('Start', { id: 'o' });
  f.oomKilled();
  assert.equal((await s.call('Wait', { id: 'o' }))['exitStatus'], 137);
  assert.deepEqual(s.events, ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit 137']);
});
