/**
 * @module vm/daemon: `DaemonService`, the VmService of a resident daemon: it owns the state
 * root (the daemon lock), keeps one VmSupervisor per VM (job queue, held QMP session, exit
 * watcher), adopts the VMs it finds at start, and publishes every change as an event.
 * Reads come from the records, which the supervisors keep current as things happen.
 */
import { NodeFs, loadNative, type Fs } from '../sys/index.js';
import { realBackends, type RealBackendOptions } from './backends.js';
import { VmError, isVmError } from './errors.js';
import { VmEvents, eventProgress, type Requestor } from './events.js';
import { VmManager } from './manager.js';
import { attachLocked, type ConsoleEnd, type ConsoleIo } from './console.js';
import { asWardenError, logsFromFiles, revertResult, type RevertResult, type CreateOptions, type ListEntry, type RestoreResult, type SaveResult, type SpecSource, type StartResult, type VmService, type IncomingMigration } from './service.js';
import { saveFileName } from './savefile.js';
import { listenForMigration, refuseInsecureListen } from './migrate-link.js';
import type { NbdAddress } from './migrate-nbd.js';
import type { DiskCopy } from './migrate-disks.js';
import type { MigrateOptions, MigrateResult, MigrationTarget } from './migrate-run.js';
import { QmpSessions } from './session.js';
import { checkName, StateStore, type Lock } from './store.js';
import type { StopOptions } from './stop.js';
import { VmSupervisor } from './supervisor.js';
import { backoff, wantsRestart, type RestartPolicy } from './restart.js';
import { assertAllowed, expectsProcess } from './machine.js';
import type { Backends } from './ports.js';
import type { QmpClient } from '../qmp/index.js';
import type { DiskAttachRequest, HotplugResult, ResizeResult } from './hotplug.js';
import type { LimitsChange, LimitsResult } from './disk-limits.js';
import type { NicAttachRequest, NicHotplugResult } from './hotplug-nic.js';
import { inspectRecord, type Inspection } from './view.js';
import type { VmRecord } from './record.js';
import type { SnapshotInfo, SnapshotResult } from './snapshot.js';

export interface DaemonServiceOptions {
  stateDir: string;
  /** The API socket, recorded in the daemon lock so the CLI finds it. */
  socket: string;
  backends?: Omit<RealBackendOptions, 'stateRoot'>;
  /** Wraps the real backends (the containerd shim puts its pod-netns network port in front). */
  wrapBackends?: (b: Backends) => Backends;
  log?: (msg: string) => void;
}

/** What all views of one daemon share. */
interface Core {
  manager: VmManager;
  /** Makes a VM's own manager: same store and backends, its progress published as that VM's events. */
  managerFor: (name: string, owner: () => number | undefined) => VmManager;
  store: StateStore;
  fs: Fs;
  events: VmEvents;
  sessions: QmpSessions;
  sups: Map<string, VmSupervisor>;
  lock: Lock;
  log: (msg: string) => void;
  /** Restart policy state per VM: the attempt count and a pending restart. */
  restarts: Map<string, { attempt: number; timer?: NodeJS.Timeout }>;
  /** Outgoing migrations in progress, to cancel them from outside the VM's job queue. */
  migrations: Map<string, AbortController>;
}

/**
 * Waits until no other process holds VM `name`'s lock: a CLI command that started in direct
 * mode before this daemon took the state root finishes first, so the daemon adopts what it
 * did (commands started after go through the daemon).
 */
async function untilUnlocked(store: StateStore, name: string, log: (m: string) => void, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let said = false; ; said = true) {
    try {
      await (await store.lock(name, 'adopt')).release();
      return;
    } catch (err) {
      if (!isVmError(err, 'VM_BUSY') || Date.now() > deadline) return; // adopt reports what is wrong
      if (!said) log(`VM ${name} is busy with a command started before this daemon: waiting for it`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export class DaemonService implements VmService {
  private constructor(private readonly core: Core, private readonly requestor?: Requestor) {}

  /** Takes the state root (VM_BUSY if another daemon owns it) and adopts every VM in it. */
  static async open(o: DaemonServiceOptions): Promise<DaemonService> {
    const fs = new NodeFs();
    const store = new StateStore(o.stateDir, fs);
    const lock = await store.lockDaemon(o.socket).catch((err: unknown) => {
      if (!isVmError(err, 'VM_BUSY')) throw err;
      const holder = err.context['holder'] as { pid?: number; socket?: string } | undefined;
      throw new VmError('VM_BUSY', `another daemon (pid ${holder?.pid ?? '?'}) owns the state root ${o.stateDir}`, {
        context: { stateRoot: o.stateDir, holder }, suggestions: [`talk to it on ${holder?.socket ?? 'its socket'}, or stop it first`],
      });
    });
    const sessions = new QmpSessions();
    const real = { ...realBackends({ stateRoot: o.stateDir, ...o.backends }), qmpConnect: (p: string, t: number) => sessions.connect(p, t) };
    const backends = o.wrapBackends === undefined ? real : o.wrapBackends(real);
    // Fault injection for tests, as openManager has it: the daemon SIGKILLs itself just before this start step.
    const die = process.env['WARDEN_TEST_DIE_BEFORE'];
    const beforeStep = die ? { beforeStep: (s: string) => { if (s === die) process.kill(process.pid, 'SIGKILL'); } } : {};
    const manager = new VmManager({ store, backends, fs, ...beforeStep });
    const events = new VmEvents(Date.now().toString(36));
    const managerFor = (name: string, owner: () => number | undefined): VmManager =>
      new VmManager({ store, backends, fs, progress: eventProgress(events, name, owner), ...beforeStep });
    const core: Core = { manager, managerFor, store, fs, events, sessions, sups: new Map(), lock, log: o.log ?? (() => {}), restarts: new Map(), migrations: new Map() };
    const svc = new DaemonService(core);
    for (const name of await store.list()) {
      await untilUnlocked(store, name, core.log);
      const rec = await svc.sup(name).adopt().catch((err: unknown) => { core.log(`adopting VM ${name} failed: ${asWardenError(err).message}`); return null; });
      if (rec?.incomingSince !== undefined && !expectsProcess(rec.phase) && (rec.undo ?? []).length === 0) {
        await core.sups.get(name)?.dispose();
        core.sups.delete(name);
        await store.remove(name); // the target of a migration this daemon did not finish: its start is undone, the VM is the source's
        core.log(`VM ${name}: an incoming migration was interrupted; its start was undone and the VM removed`);
        continue;
      }
      if (rec !== null && rec.spec['autostart'] === true && !expectsProcess(rec.phase)) {
        svc.start(name).catch((err: unknown) => core.log(`autostart of VM ${name} failed: ${asWardenError(err).message}`));
      }
    }
    return svc;
  }

  get stateRoot(): string { return this.core.store.root; }
  get events(): VmEvents { return this.core.events; }
  get supervisors(): ReadonlyMap<string, VmSupervisor> { return this.core.sups; }

  as(requestor: Requestor): VmService {
    return new DaemonService(this.core, requestor);
  }

  /** The VM's supervisor (made on first use; the name is checked first, so `../x` never reaches a path). */
  private sup(name: string): VmSupervisor {
    checkName(name);
    let s = this.core.sups.get(name);
    if (s === undefined) {
      let owner: number | undefined;
      void this.core.store.tryRead(name).then((r) => { owner = r?.owner; }, () => undefined);
      s = new VmSupervisor(name, {
        manager: this.core.managerFor(name, () => owner), events: this.core.events, sessions: this.core.sessions, native: loadNative(), log: this.core.log,
        afterJob: (sup, before, after, action) => {
          if (after === null && this.core.sups.get(name) === sup) { this.core.sups.delete(name); void sup.dispose(); }
          if (action === 'exit') this.maybeRestart(before, after);
        },
      });
      this.core.sups.set(name, s);
    }
    return s;
  }

  /** Applies the spec's restart policy to a VM whose QEMU ended on its own. */
  private maybeRestart(before: VmRecord | null, after: VmRecord | null): void {
    const x = after?.lastExit;
    if (after === null || x === undefined || x.at === before?.lastExit?.at) return;
    if (!wantsRestart(after.spec['restart'] as RestartPolicy | undefined, x.reason)) return;
    const name = after.name;
    const state = this.core.restarts.get(name) ?? { attempt: 0 };
    const ran = before?.run === undefined ? 0 : Date.parse(x.at) - Date.parse(before.run.startedAt);
    const next = backoff(state.attempt, ran);
    state.attempt = next.attempt;
    this.core.events.publish({ type: 'restarting', vm: name, ...(after.owner === undefined ? {} : { owner: after.owner }), reason: x.reason,
      data: { attempt: next.attempt, delayMs: next.delayMs } });
    state.timer = setTimeout(() => {
      delete state.timer;
      this.start(name).catch((err: unknown) => this.core.log(`restart of VM ${name} failed: ${asWardenError(err).message}`));
    }, next.delayMs);
    this.core.restarts.set(name, state);
  }

  /** Runs `fn` with the VM's own manager as its next job. */
  private job<T>(name: string, action: string, fn: (m: VmManager) => Promise<T>): Promise<T> {
    const s = this.sup(name);
    return s.run(action, () => fn(s.manager), this.requestor);
  }

  async create(src: SpecSource, o: CreateOptions = {}): Promise<VmRecord> {
    const owner = o.owner ?? this.requestor?.uid ?? process.getuid?.() ?? 0;
    const m = this.core.manager;
    const rec = 'file' in src ? await m.create(src.file, o.name, owner)
      : await m.createFromText(src.text, src.origin ?? '/api-request.yaml', { owner, ...(o.name === undefined ? {} : { name: o.name }) });
    this.core.events.publish({ type: 'created', vm: rec.name, owner, phase: rec.phase, ...(this.requestor ? { requestor: this.requestor } : {}) });
    this.sup(rec.name);
    return rec;
  }

  start(name: string, o: { paused?: boolean } = {}): Promise<StartResult> {
    return this.job(name, 'start', async (m) => {
      const r = await m.start(name, o);
      return { record: r.record, done: r.run.done, timings: r.run.timings, warnings: r.warnings };
    });
  }

  stop(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.job(name, 'stop', (m) => m.stop(name, o)); }
  kill(name: string): Promise<VmRecord> { return this.job(name, 'kill', (m) => m.kill(name)); }
  pause(name: string): Promise<VmRecord> { return this.job(name, 'pause', (m) => m.pause(name)); }
  resume(name: string): Promise<VmRecord> { return this.job(name, 'resume', (m) => m.resume(name)); }
  restart(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.job(name, 'restart', (m) => m.restart(name, o)); }

  delete(name: string, o: { force?: boolean } = {}): Promise<void> {
    return this.job(name, 'delete', async (m) => {
      if (o.force === true) {
        const rec = await m.store.read(name);
        if (rec.phase === 'running' || rec.phase === 'paused' || rec.phase === 'stopping' || rec.phase === 'starting') await m.kill(name);
      }
      await m.delete(name);
    });
  }

  /** The record as the supervisor keeps it (no lock: a verb in progress is not waited for). */
  async get(name: string): Promise<VmRecord> {
    checkName(name);
    return this.core.store.read(name);
  }

  async list(): Promise<ListEntry[]> {
    const out: ListEntry[] = [];
    for (const name of await this.core.store.list()) {
      try {
        const record = await this.core.store.tryRead(name);
        if (record !== null) out.push({ name, record });
      } catch (err) {
        out.push({ name, record: null, error: asWardenError(err).toJSON() });
      }
    }
    return out;
  }

  async inspect(name: string): Promise<Inspection> {
    return inspectRecord(this.core.fs, this.core.store, await this.get(name));
  }

  /** The held QMP session of a running VM, for what passes fds (the display hand-off, src/vm/display.ts). */
  async qmpSession(name: string): Promise<QmpClient> {
    const rec = await this.get(name);
    assertAllowed(name, rec.phase, 'console');
    return this.core.sessions.client(this.core.store.paths(name).qmpSocket);
  }

  attachDisk(name: string, req: DiskAttachRequest): Promise<HotplugResult> {
    return this.job(name, 'qmp', () => this.core.manager.attachDisk(name, req));
  }

  detachDisk(name: string, disk: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<HotplugResult> {
    return this.job(name, 'qmp', () => this.core.manager.detachDisk(name, disk, o));
  }

  attachNic(name: string, req: NicAttachRequest): Promise<NicHotplugResult> {
    return this.job(name, 'qmp', () => this.core.manager.attachNic(name, req));
  }

  detachNic(name: string, nic: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<NicHotplugResult> {
    return this.job(name, 'qmp', () => this.core.manager.detachNic(name, nic, o));
  }

  resizeDisk(name: string, disk: string, bytes: number): Promise<ResizeResult> {
    return this.job(name, 'qmp', () => this.core.manager.resizeDisk(name, disk, bytes));
  }

  setDiskLimits(name: string, disk: string, c: LimitsChange): Promise<LimitsResult> {
    return this.job(name, 'qmp', () => this.core.manager.setDiskLimits(name, disk, c));
  }

  qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.job(name, 'qmp', (m) => m.qmp(name, command, args));
  }

  console(name: string, io: ConsoleIo): Promise<ConsoleEnd> {
    checkName(name);
    return attachLocked(this.core.store, name, io);
  }

  logs(name: string, out: NodeJS.WritableStream, o: { follow?: boolean } = {}): Promise<number> {
    checkName(name);
    return logsFromFiles(this, this.core.store, name, out, o.follow === true);
  }

  save(name: string, file: string): Promise<SaveResult> {
    return this.job(name, 'save', (m) => m.save(name, file));
  }

  /** Under the supervisor of the VM the file names (read from its header here), as a start is. */
  restore(file: string, o: { name?: string } = {}): Promise<RestoreResult> {
    const name = o.name ?? saveFileName(file);
    return this.job(name, 'restore', async (m) => {
      const r = await m.restore(file, { name, ...(this.requestor === undefined ? {} : { owner: this.requestor.uid }) });
      return { record: r.record, done: r.run.done, timings: r.run.timings, warnings: r.warnings, ...(r.migration === undefined ? {} : { migration: r.migration }) };
    });
  }

  snapshotCreate(name: string, o: { snap?: string; memory?: boolean } = {}): Promise<SnapshotResult> {
    return this.job(name, 'snapshot', (m) => m.snapshotCreate(name, o));
  }

  snapshotList(name: string): Promise<SnapshotInfo[]> {
    checkName(name);
    return this.core.manager.snapshotList(name);
  }

  snapshotDelete(name: string, snap: string): Promise<SnapshotResult> {
    return this.job(name, 'snapshot', (m) => m.snapshotDelete(name, snap));
  }

  /** Under the VM's supervisor, as a start is: the revert may stop QEMU and start it again. */
  snapshotRevert(name: string, snap: string): Promise<RevertResult> {
    return this.job(name, 'revert', async (m) => revertResult(await m.snapshotRevert(name, snap)));
  }

  /** Live migration, source side, as the VM's job; `migrateCancel` aborts it from outside the queue. */
  migrate(name: string, target: MigrationTarget, o: MigrateOptions = {}): Promise<MigrateResult> {
    const ctl = new AbortController();
    this.core.migrations.set(name, ctl);
    const signal = o.signal === undefined ? ctl.signal : AbortSignal.any([ctl.signal, o.signal]);
    return this.job(name, 'migrate', (m) => m.migrateOut(name, target, { ...o, signal }))
      .finally(() => { if (this.core.migrations.get(name) === ctl) this.core.migrations.delete(name); });
  }

  async migrateCancel(name: string): Promise<void> {
    checkName(name);
    const ctl = this.core.migrations.get(name);
    if (ctl === undefined) throw new VmError('VM_INVALID_STATE', `VM ${name} is not migrating`, { context: { vm: name } });
    ctl.abort();
  }

  /**
   * Live migration, target side: listens on `listenHost` (loopback, or any address with `insecure`: the stream is not encrypted), then runs the incoming start as the
   * VM's job; resolves once QEMU waits for the stream (so the source sends into a ready target).
   */
  async migrateIn(spec: Record<string, unknown>, o: { name?: string; listenHost: string; insecure?: boolean; copies?: DiskCopy[] }): Promise<IncomingMigration> {
    const name = o.name ?? String(spec['name']);
    checkName(name);
    refuseInsecureListen(o.listenHost, o.insecure === true);
    const link = await listenForMigration(o.listenHost, 120_000);
    let ready!: (nbd?: NbdAddress) => void;
    const isReady = new Promise<NbdAddress | undefined>((r) => { ready = r; });
    const owner = this.requestor?.uid ?? process.getuid?.() ?? 0;
    const incoming = { accept: link.accept, ready, ...(o.copies === undefined ? {} : { exportHost: o.listenHost }) };
    const done = this.job(name, 'migrate-in', async (m) => {
      try {
        const r = await m.migrateIn(spec, { name, owner, link: incoming, ...(o.copies === undefined ? {} : { copies: o.copies }) });
        return { record: r.record, done: r.run.done, timings: r.run.timings, warnings: r.warnings, ...(r.migration === undefined ? {} : { migration: r.migration }) };
      } finally {
        link.close();
      }
    });
    const nbd = await Promise.race([isReady, done.then(() => undefined)]);
    return { name, address: link.address, ...(nbd === undefined ? {} : { nbd }), done };
  }

  /** Lets go of every VM (they keep running; the next daemon adopts them) and of the state root. */
  async close(): Promise<void> {
    for (const r of this.core.restarts.values()) clearTimeout(r.timer);
    await Promise.all([...this.core.sups.values()].map((s) => s.dispose()));
    this.core.sups.clear();
    await this.core.sessions.closeAll();
    await this.core.lock.release();
  }
}
