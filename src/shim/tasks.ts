/**
 * @module shim/tasks: containerd's Task service over warden's VM lifecycle. Create = bundle
 * → spec → VM started paused (plan, host setup, jail, QEMU -S); Start = cont; Pause/Resume
 * = QMP stop/cont; Kill = ACPI power button (SIGTERM and the rest) or kill (SIGKILL); exits
 * are noticed by polling the record (reconcile) and published as /tasks/exit; Delete =
 * teardown and forget. Operations on one VM run one at a time (the VM lock is per process).
 */
import { constants } from 'node:os';
import type { ProcessRunner } from '../sys/index.js';
import { expectsProcess, isVmError, type VmPaths, type VmRecord, type VmService } from '../vm/index.js';
import { ShimError } from './errors.js';
import { mountRootfs, prepareVm, readOci, unmountRootfs, type RootfsMount } from './prepare.js';
import { netnsOf } from './bundle.js';
import { forgetSandbox, isSandbox, startSandbox } from './sandbox.js';
import type { Publisher } from './events.js';
import { packAny, timestamp, type Protos } from './protos.js';
import { ConsoleCopy } from './stdio.js';
import { cgroupMetrics } from './stats.js';
import { taskKey, vmNameFor } from './names.js';
import { exitStatusOf, newTask, type Task } from './task.js';
import type { Handler, Metadata } from './ttrpc.js';
import type { NetnsPort } from './netns.js';

export interface TaskServiceDeps {
  vms: VmService;
  paths(vm: string): VmPaths;
  protos: Protos;
  publisher: Publisher;
  runner: ProcessRunner;
  netns: NetnsPort;
  defaultNamespace: string;
  /** The shim's directory (sandbox placeholder records). */
  shimDir: string;
  log(line: string): void;
}

const NS_HEADER = 'containerd-namespace-ttrpc';
const WATCH_MS = 500;
const POWERDOWN_REPEAT_MS = 3000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class TaskService {
  readonly tasks = new Map<string, Task>();
  private readonly m: VmService;
  private readonly watch: NodeJS.Timeout;

  constructor(private readonly d: TaskServiceDeps) {
    this.m = d.vms;
    this.watch = setInterval(() => this.checkExits(), WATCH_MS);
  }

  close(): void {
    clearInterval(this.watch);
  }

  handlers(): Record<string, Handler> {
    const h = (fn: (req: Record<string, unknown>, ns: string) => Promise<Record<string, unknown>>): Handler =>
      (req, md: Metadata) => fn(req, md[NS_HEADER] ?? this.d.defaultNamespace);
    return {
      Create: h((r, ns) => this.create(r, ns)),
      Start: h((r, ns) => this.start(this.get(ns, r))),
      State: h(async (r, ns) => this.state(this.get(ns, r))),
      Pause: h(async (r, ns) => this.setRun(this.get(ns, r), 'pause')),
      Resume: h(async (r, ns) => this.setRun(this.get(ns, r), 'resume')),
      Kill: h(async (r, ns) => this.kill(this.get(ns, r), Number(r['signal']))),
      Wait: h(async (r, ns) => { const t = this.get(ns, r); await t.exited; return { exitStatus: t.exit!.status, exitedAt: timestamp(t.exit!.at) }; }),
      Delete: h((r, ns) => this.delete(this.get(ns, r))),
      Pids: h(async (r, ns) => { const t = this.get(ns, r); return { processes: t.exit === undefined ? [{ pid: t.pid }] : [] }; }),
      Connect: h(async (r, ns) => { const t = this.tasks.get(taskKey(ns, String(r['id']))); return { shimPid: process.pid, taskPid: t?.pid ?? 0, version: 'warden-shim-v1' }; }),
      Stats: h(async (r, ns) => this.stats(this.get(ns, r))),
      Shutdown: h(async () => { this.onShutdown?.(this.tasks.size); return {}; }),
      CloseIO: h(async (r, ns) => { this.get(ns, r); return {}; }),
      ResizePty: h(async (r, ns) => { this.get(ns, r); return {}; }),
      Exec: h(async () => { throw unsupported('exec (a VM has no processes to run beside it; use the guest agent or ssh)'); }),
      Checkpoint: h(async () => { throw unsupported('checkpoint'); }),
      Update: h(async () => { throw unsupported('update (resizing a running VM)'); }),
    };
  }

  /** Called on Shutdown with the number of tasks still served (the server only logs it: it ends when idle). */
  onShutdown?: (tasks: number) => void;

  private get(ns: string, r: Record<string, unknown>): Task {
    const id = String(r['id'] ?? '');
    const execId = String(r['execId'] ?? '');
    const t = this.tasks.get(taskKey(ns, id));
    if (t === undefined || execId !== '') {
      throw new ShimError('SHIM_NOT_FOUND', `task ${id}${execId ? ` exec ${execId}` : ''} not found in namespace ${ns}`, { context: { id, ns, execId } });
    }
    return t;
  }

  /** Runs `fn` after every earlier operation on this VM. */
  private op<T>(t: Task, fn: () => Promise<T>): Promise<T> {
    const p = t.queue.then(fn, fn);
    t.queue = p.catch(() => undefined);
    return p;
  }

  private async create(r: Record<string, unknown>, ns: string): Promise<Record<string, unknown>> {
    const id = String(r['id']);
    const bundle = String(r['bundle']);
    if (this.tasks.has(taskKey(ns, id))) throw new ShimError('SHIM_EXISTS', `task ${id} already exists in namespace ${ns}`, { context: { id, ns } });
    const vm = vmNameFor(ns, id);
    const t = newTask(id, ns, vm, bundle, {
      stdin: String(r['stdin'] ?? ''), stdout: String(r['stdout'] ?? ''), stderr: String(r['stderr'] ?? ''), terminal: r['terminal'] === true,
    });
    this.tasks.set(taskKey(ns, id), t);
    try {
      const t0 = performance.now();
      t.mounts = await mountRootfs(this.d.runner, bundle, (r['rootfs'] ?? []) as RootfsMount[]);
      const oci = readOci(bundle);
      if (isSandbox(oci)) return await this.createSandbox(t, r, netnsOf(oci));
      await this.forgetStale(vm);
      const t1 = performance.now();
      const prepared = await prepareVm(this.d.runner, bundle, vm);
      for (const n of prepared.notes) this.d.log(`task ${id}: ${n}`);
      const t2 = performance.now();
      await this.m.create({ file: prepared.specFile }, { name: vm });
      if (prepared.netns !== undefined) this.d.netns.register(vm, prepared.netns);
      const { record, timings } = await this.m.start(vm, { paused: true });
      const ms = (x: number): string => x.toFixed(0);
      this.d.log(`task ${id}: VM ${vm} created paused in ${ms(performance.now() - t0)} ms (mount ${ms(t1 - t0)}, bundle ${ms(t2 - t1)}, `
        + `${Object.entries(timings).map(([k, v]) => `${k} ${ms(v)}`).join(', ')})`);
      t.pid = record.run?.qemu.pid ?? 0;
      t.cgroups = record.run?.cgroups ?? [];
      t.console = new ConsoleCopy(this.d.paths(vm).serialLog, t.io.stdout);
      t.console.onError = (err) => this.d.log(`task ${id}: copying the console to ${t.io.stdout} stopped: ${String(err)}`);
      this.d.log(`task ${id}: console -> ${t.io.stdout || '(nowhere)'}`);
    } catch (err) {
      this.tasks.delete(taskKey(ns, id));
      await this.m.delete(vm, { force: true }).catch(() => undefined);
      this.d.netns.forget(vm);
      await unmountRootfs(this.d.runner, bundle, t.mounts).catch(() => undefined);
      throw err;
    }
    t.checking = false;
    this.d.publisher.publish(ns, '/tasks/create', 'containerd.events.TaskCreate', {
      containerId: id, bundle, rootfs: r['rootfs'] ?? [], io: t.io, pid: t.pid,
    });
    return { pid: t.pid };
  }

  /** A CRI pod sandbox: the placeholder process is its pid; its end is the task's exit. */
  private async createSandbox(t: Task, r: Record<string, unknown>, netns: string | undefined): Promise<Record<string, unknown>> {
    t.sandbox = await startSandbox(this.d.shimDir, t.vm, netns);
    t.pid = t.sandbox.pid;
    void t.sandbox.exited.then((status) => this.finish(t, status, new Date(), 'the sandbox placeholder ended'));
    t.checking = false;
    this.d.publisher.publish(t.ns, '/tasks/create', 'containerd.events.TaskCreate', { containerId: t.id, bundle: t.bundle, rootfs: r['rootfs'] ?? [], io: t.io, pid: t.pid });
    return { pid: t.pid };
  }

  /** A record of this name left by an earlier shim (it died, delete was not run): end and drop it. */
  private async forgetStale(vm: string): Promise<void> {
    await this.m.delete(vm, { force: true }).catch((err: unknown) => { if (!isVmError(err, 'VM_NOT_FOUND')) throw err; });
  }

  private async start(t: Task): Promise<Record<string, unknown>> {
    if (t.status !== 'created') throw new ShimError('SHIM_INVALID_STATE', `task ${t.id} is ${t.status}, not created`, { context: { id: t.id, status: t.status } });
    if (t.sandbox === undefined) await this.op(t, () => this.m.resume(t.vm));
    t.status = 'running';
    this.d.publisher.publish(t.ns, '/tasks/start', 'containerd.events.TaskStart', { containerId: t.id, pid: t.pid });
    return { pid: t.pid };
  }

  private state(t: Task): Record<string, unknown> {
    return {
      id: t.id, bundle: t.bundle, pid: t.pid, status: t.status.toUpperCase(), ...t.io,
      exitStatus: t.exit?.status ?? 0, ...(t.exit === undefined ? {} : { exitedAt: timestamp(t.exit.at) }),
    };
  }

  private async setRun(t: Task, what: 'pause' | 'resume'): Promise<Record<string, unknown>> {
    if (t.sandbox !== undefined) throw unsupported(`${what} of a pod sandbox`);
    const want = what === 'pause' ? 'running' : 'paused';
    if (t.status !== want) throw new ShimError('SHIM_INVALID_STATE', `cannot ${what} task ${t.id}: it is ${t.status}`, { context: { id: t.id, status: t.status } });
    await this.op(t, () => (what === 'pause' ? this.m.pause(t.vm) : this.m.resume(t.vm)));
    t.status = what === 'pause' ? 'paused' : 'running';
    this.d.publisher.publish(t.ns, what === 'pause' ? '/tasks/paused' : '/tasks/resumed',
      what === 'pause' ? 'containerd.events.TaskPaused' : 'containerd.events.TaskResumed', { containerId: t.id });
    return {};
  }

  /**
   * SIGKILL kills QEMU. Any other signal presses the ACPI power button (again every few
   * seconds: a guest still booting has no one listening yet) until the VM is gone or killed;
   * a VM whose vCPUs are stopped cannot answer it, so QEMU is told to quit instead.
   */
  private async kill(t: Task, signal: number): Promise<Record<string, unknown>> {
    if (t.exit !== undefined) throw new ShimError('SHIM_NOT_FOUND', `task ${t.id}: process already finished`, { context: { id: t.id } });
    if (t.sandbox !== undefined) { t.sandbox.kill(signal); return {}; }
    if (signal === constants.signals.SIGKILL) {
      t.powerdown = false;
      const rec = await this.op(t, () => this.m.kill(t.vm)).catch(() => this.op(t, () => this.m.get(t.vm)));
      await this.finalize(t, rec);
      return {};
    }
    if (t.status !== 'running') {
      void this.op(t, () => this.m.stop(t.vm, { force: true })).then((rec) => this.finalize(t, rec), (err: unknown) => this.d.log(`task ${t.id}: quit failed: ${String(err)}`));
      return {};
    }
    if (t.powerdown) return {};
    t.powerdown = true;
    void (async () => {
      while (t.powerdown && t.exit === undefined) {
        await this.op(t, () => this.m.qmp(t.vm, 'system_powerdown')).catch(() => undefined);
        await sleep(POWERDOWN_REPEAT_MS);
      }
    })();
    return {};
  }

  /** Checks VM `vm` now (the daemon's exit watcher saw its QEMU go). */
  poke(vm: string): void {
    this.checkExits(vm);
  }

  /**
   * Reads the live tasks' records (every WATCH_MS, and when poked): a VM whose QEMU is gone
   * is torn down (by the supervisor, or by reconcile) and its exit published.
   */
  private checkExits(only?: string): void {
    for (const t of this.tasks.values()) {
      if (t.exit !== undefined || t.checking || t.sandbox !== undefined || (only !== undefined && t.vm !== only)) continue;
      t.checking = true;
      void this.op(t, () => this.m.get(t.vm))
        .then((rec) => (expectsProcess(rec.phase) ? undefined : this.finalize(t, rec)))
        .catch((err: unknown) => this.d.log(`task ${t.id}: checking its VM failed: ${String(err)}`))
        .finally(() => { t.checking = false; });
    }
  }

  private async finalize(t: Task, rec: VmRecord): Promise<void> {
    if (t.exit !== undefined || expectsProcess(rec.phase)) return;
    if (rec.lastExit?.reason === 'oom') this.d.publisher.publish(t.ns, '/tasks/oom', 'containerd.events.TaskOOM', { containerId: t.id });
    this.finish(t, exitStatusOf(rec), new Date(rec.lastExit?.at ?? Date.now()), `VM ${t.vm} ended (${rec.lastExit?.reason ?? '?'}: ${rec.lastExit?.detail ?? ''})`);
  }

  /** Records the task's exit once, publishes /tasks/exit and wakes every Wait. */
  private finish(t: Task, status: number, at: Date, what: string): void {
    if (t.exit !== undefined) return;
    t.powerdown = false;
    t.exit = { status, at };
    t.status = 'stopped';
    t.console?.finish();
    this.d.log(`task ${t.id}: ${what}, exit status ${t.exit.status}`);
    this.d.publisher.publish(t.ns, '/tasks/exit', 'containerd.events.TaskExit', {
      containerId: t.id, id: t.id, pid: t.pid, exitStatus: t.exit.status, exitedAt: timestamp(t.exit.at),
    });
    t.markExited();
  }

  private async delete(t: Task): Promise<Record<string, unknown>> {
    if (t.exit === undefined) {
      if (t.status !== 'created') throw new ShimError('SHIM_INVALID_STATE', `task ${t.id} is ${t.status}: kill it before deleting it`, { context: { id: t.id } });
      if (t.sandbox !== undefined) { t.sandbox.kill(constants.signals.SIGKILL); await t.exited; }
      else await this.finalize(t, await this.op(t, () => this.m.kill(t.vm)));
    }
    if (t.sandbox !== undefined) forgetSandbox(this.d.shimDir, t.vm);
    else await this.op(t, () => this.m.delete(t.vm));
    await unmountRootfs(this.d.runner, t.bundle, t.mounts);
    this.tasks.delete(taskKey(t.ns, t.id));
    this.d.netns.forget(t.vm);
    const exitedAt = timestamp(t.exit!.at);
    this.d.publisher.publish(t.ns, '/tasks/delete', 'containerd.events.TaskDelete', { containerId: t.id, id: t.id, pid: t.pid, exitStatus: t.exit!.status, exitedAt });
    return { pid: t.pid, exitStatus: t.exit!.status, exitedAt };
  }

  private async stats(t: Task): Promise<Record<string, unknown>> {
    const m = cgroupMetrics(t.cgroups);
    return { stats: packAny(this.d.protos, m.typeName, m.value) };
  }
}

function unsupported(what: string): ShimError {
  return new ShimError('SHIM_UNSUPPORTED', `the warden shim does not support ${what}`, { context: { what } });
}
