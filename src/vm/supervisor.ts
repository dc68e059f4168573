/**
 * @module vm/supervisor: one running daemon's hold on one VM: its job queue (one verb at a
 * time), its held QMP session and that session's events, and an exit watcher on QEMU's
 * pidfd, so a QEMU that dies is recorded and published at once, with no command run.
 * Each verb is a job; the phase change a job causes is published as a typed event.
 */
import type { QmpClient } from '../qmp/index.js';
import type { NativeAddon, WatchHandle } from '../sys/index.js';
import type { EventDraft, Requestor, VmEvents } from './events.js';
import { JobQueue } from './jobs.js';
import { expectsProcess } from './machine.js';
import type { VmManager } from './manager.js';
import { isAlive } from './proc.js';
import { HelperWatch } from './helper-watch.js';
import type { HelperRun, ProcId, VmRecord } from './record.js';
import type { QmpSessions } from './session.js';

export interface SupervisorDeps {
  manager: VmManager;
  events: VmEvents;
  sessions: QmpSessions;
  native: NativeAddon;
  /** Called after every job with the record as it then is (the daemon's restart policy). */
  afterJob?: (sup: VmSupervisor, before: VmRecord | null, after: VmRecord | null, action: string) => void;
  /** Where the supervisor reports what it could not do (no caller to throw to). */
  log: (msg: string) => void;
}

/** QMP events that become typed events of their own. */
const QMP_EVENTS: Readonly<Record<string, EventDraft['type']>> = {
  GUEST_PANICKED: 'guest-panicked', BLOCK_IO_ERROR: 'block-io-error', DEVICE_DELETED: 'device-deleted',
};

export class VmSupervisor {
  readonly jobs = new JobQueue();
  private watch: { handle: WatchHandle; fd: number; qemu: ProcId } | undefined;
  private readonly helpers: HelperWatch;
  private session: QmpClient | undefined;
  private disposed = false;
  /** The owner from the last record seen, for events that carry no record (QMP's). */
  private owner: number | undefined;

  constructor(readonly name: string, private readonly d: SupervisorDeps) {
    this.helpers = new HelperWatch(d.native, (p) => isAlive(d.manager.fs, p), (h) => this.helperDied(h));
  }

  /** The VM's manager (its progress is published as this VM's events). */
  get manager(): VmManager {
    return this.d.manager;
  }

  private get qmpPath(): string {
    return this.d.manager.store.paths(this.name).qmpSocket;
  }

  /** Runs `fn` as this VM's next job and publishes the change it made. */
  run<T>(action: string, fn: () => Promise<T>, requestor?: Requestor, operation?: string): Promise<T> {
    return this.jobs.run(async () => {
      const before = await this.d.manager.store.tryRead(this.name).catch(() => null);
      try {
        return await fn();
      } finally {
        const after = await this.d.manager.store.tryRead(this.name).catch(() => null);
        this.publishChange(before, after, { ...(requestor ? { requestor } : {}), ...(operation ? { operation } : {}) });
        await this.follow(after);
        this.d.afterJob?.(this, before, after, action);
      }
    });
  }

  /** Takes over a VM found at daemon start: its record is reconciled (a start left half-done is undone) and a live QEMU watched. */
  adopt(): Promise<VmRecord> {
    return this.run('adopt', () => this.d.manager.reconcile(this.name, true));
  }

  /** Stops watching (the daemon exits; QEMU keeps running). */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.unwatch();
    this.helpers.clear();
    this.session = undefined;
    await this.d.sessions.release(this.qmpPath);
  }

  private publishChange(before: VmRecord | null, after: VmRecord | null, extra: Partial<EventDraft>): void {
    this.owner = after?.owner ?? before?.owner ?? this.owner;
    const own = this.owner === undefined ? {} : { owner: this.owner };
    const ev = (draft: EventDraft): void => { this.d.events.publish({ ...draft, ...own, ...extra }); };
    if (after === null) {
      if (before !== null) ev({ type: 'deleted', vm: this.name });
      return;
    }
    const was = before?.phase;
    if (after.lastExit !== undefined && after.lastExit.at !== before?.lastExit?.at) {
      const x = after.lastExit;
      ev({ type: 'stopped', vm: this.name, phase: after.phase, reason: x.reason, detail: x.detail, signal: x.signal ?? null, code: x.code ?? null });
    }
    if (after.phase === was) return;
    if (after.phase === 'running') ev({ type: was === 'paused' ? 'resumed' : 'started', vm: this.name, phase: 'running' });
    else if (after.phase === 'paused') ev({ type: was === 'running' ? 'paused' : 'started', vm: this.name, phase: 'paused' }); // started paused
  }

  /** Watches QEMU and holds its QMP session while a phase expects it; lets both go otherwise. */
  private async follow(rec: VmRecord | null): Promise<void> {
    if (this.disposed) return;
    if (rec === null || !expectsProcess(rec.phase) || rec.run === undefined) {
      this.unwatch();
      this.helpers.clear();
      return;
    }
    this.watchExit(rec.run.qemu);
    this.helpers.follow(rec.helpers ?? []);
    await this.holdSession();
  }

  private watchExit(qemu: ProcId): void {
    if (this.watch?.qemu.pid === qemu.pid) return;
    this.unwatch();
    let fd: number;
    try {
      fd = this.d.native.pidfdOpen(qemu.pid);
    } catch {
      this.exited();
      return;
    }
    const handle = this.d.native.watchReadable(fd, () => {
      this.d.native.closeFd(fd);
      this.watch = undefined;
      this.exited();
    });
    this.watch = { handle, fd, qemu };
    // The pid may already belong to another process (QEMU died before the pidfd was opened).
    void isAlive(this.d.manager.fs, qemu).then((alive) => { if (!alive && this.watch?.fd === fd) { this.unwatch(); this.exited(); } });
  }

  private unwatch(): void {
    const w = this.watch;
    if (w === undefined) return;
    this.watch = undefined;
    this.d.native.unwatch(w.handle);
    this.d.native.closeFd(w.fd);
  }

  /** QEMU is gone: reconcile ends the run from the record and the job publishes why. */
  private exited(): void {
    if (this.disposed) return;
    this.run('exit', () => this.d.manager.reconcile(this.name)).catch((err: unknown) => this.d.log(`VM ${this.name}: recording the exit of QEMU failed: ${String((err as Error)?.message ?? err)}`));
  }

  /**
   * A helper's process ended. Reported (`helper-died`) only while its run goes on: QEMU alive
   * and the record still naming it; a helper stopped by teardown, or one that followed QEMU
   * out, is no news (the job runs after any stop in progress, which drops the run's helpers).
   * The VM keeps running without what the helper served; inspect shows it as gone.
   */
  private helperDied(h: HelperRun): void {
    if (this.disposed) return;
    this.run('helper-exit', async () => {
      const rec = await this.d.manager.store.tryRead(this.name);
      const current = rec?.helpers?.some((x) => x.jailName === h.jailName && x.proc.pid === h.proc.pid) ?? false;
      if (rec === null || !current || !expectsProcess(rec.phase) || rec.run === undefined || !(await isAlive(this.d.manager.fs, rec.run.qemu))) return;
      const exit = await this.d.manager.helperExit(h).catch(() => null);
      const how = exit === null ? 'exited' : exit.signal !== null ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
      const detail = `helper ${h.kind} (${h.from}) of VM ${this.name}, pid ${h.proc.pid}, ${how}: what it served no longer works; restart the VM`;
      this.d.log(detail);
      this.d.events.publish({ type: 'helper-died', vm: this.name, ...(rec.owner === undefined ? {} : { owner: rec.owner }), phase: rec.phase, detail,
        signal: exit?.signal ?? null, code: exit?.code ?? null, data: { kind: h.kind, from: h.from, jailName: h.jailName, pid: h.proc.pid, uid: h.uid } });
    }).catch((err: unknown) => this.d.log(`VM ${this.name}: reporting the end of helper ${h.jailName} failed: ${String((err as Error)?.message ?? err)}`));
  }

  /**
   * The vCPUs stopped or resumed without a verb of ours (the guest, a watchdog, an I/O error
   * with werror=stop): the record follows what QEMU says now. Our own pause and resume have
   * already written the phase by the time this job runs, so it changes nothing for them.
   */
  private syncRunState(c: QmpClient): void {
    this.run('qmp-event', async () => {
      const rec = await this.d.manager.store.tryRead(this.name);
      if (rec === null || (rec.phase !== 'running' && rec.phase !== 'paused')) return;
      const st = (await c.executeUntyped('query-status', undefined, { timeoutMs: 2000 }).catch(() => null)) as { status?: string } | null;
      const phase = st?.status === 'running' ? 'running' : st?.status === 'paused' ? 'paused' : null;
      if (phase !== null && phase !== rec.phase) await this.d.manager.store.write({ ...rec, phase, updatedAt: new Date().toISOString() });
    }).catch((err: unknown) => this.d.log(`VM ${this.name}: following a QMP STOP/RESUME failed: ${String((err as Error)?.message ?? err)}`));
  }

  /** A device left QEMU: a disk left `removing` by a detach that gave up waiting is finished now (vm/hotplug). */
  private finishRemovals(): void {
    const pending = async (): Promise<boolean> => ((await this.d.manager.store.tryRead(this.name))?.hotplug ?? []).some((e) => e.state === 'removing' && e.kind !== 'nic');
    // Checked again inside the job: the usual case is a detach job still waiting, which finishes it itself.
    void pending().then((yes) => (yes ? this.run('finish-removal', async () => { if (await pending()) await this.d.manager.finishRemovals(this.name); }) : undefined))
      .catch((err: unknown) => this.d.log(`VM ${this.name}: finishing a device removal failed: ${String((err as Error)?.message ?? err)}`));
  }

  private async holdSession(): Promise<void> {
    const c = await this.d.sessions.client(this.qmpPath).catch(() => undefined);
    if (c === undefined || c === this.session) return;
    this.session = c;
    void this.readEvents(c);
  }

  private async readEvents(c: QmpClient): Promise<void> {
    try {
      for await (const e of c.events('all')) {
        if (e.event === 'STOP' || e.event === 'RESUME') this.syncRunState(c);
        if (e.event === 'DEVICE_DELETED') this.finishRemovals();
        const type = QMP_EVENTS[e.event];
        if (type !== undefined) this.d.events.publish({ type, vm: this.name, ...(this.owner === undefined ? {} : { owner: this.owner }), data: (e as { data?: Record<string, unknown> }).data ?? {} });
      }
    } catch (err) {
      this.d.log(`VM ${this.name}: QMP events: ${String((err as Error)?.message ?? err)}`);
    } finally {
      if (this.session === c) this.session = undefined;
    }
  }
}
