/**
 * @module vm/service: `VmService`, the one interface the CLI and the HTTP API call for every
 * VM verb, and `LocalService`, its in-process implementation: each verb is one VmManager call
 * under the VM's lock file, as one CLI command always ran. The daemon's implementation
 * (daemon.ts) keeps a supervisor per VM instead; the API client (src/api/client.ts) is a third.
 */
import { WardenError } from '../errors/index.js';
import { isVmError } from './errors.js';
import type { DiskAttachRequest, HotplugResult, ResizeResult } from './hotplug.js';
import type { LimitsChange, LimitsResult } from './disk-limits.js';
import type { NicAttachRequest, NicHotplugResult } from './hotplug-nic.js';
import type { VmManager } from './manager.js';
import type { StopOptions } from './stop.js';
import type { StateStore, VmPaths } from './store.js';
import { attachLocked, printSerialLog, type ConsoleEnd, type ConsoleIo } from './console.js';
import { inspectRecord, type Inspection } from './view.js';
import type { VmRecord } from './record.js';
import type { Requestor, VmEvents } from './events.js';
import type { MigrationFigures } from './state.js';
import type { SnapshotInfo, SnapshotResult } from './snapshot.js';
import type { MigrationAddress } from './migrate-link.js';
import type { NbdAddress } from './migrate-nbd.js';
import type { DiskCopy } from './migrate-disks.js';
import type { MigrateOptions, MigrateResult, MigrationTarget } from './migrate-run.js';

/** Where a spec comes from: a file (paths resolve against its directory) or text (an API body: paths must be absolute). */
export type SpecSource = { file: string } | { text: string; origin?: string };

export interface CreateOptions {
  /** Use this name instead of the spec's. */
  name?: string;
  /** The owner's uid (default: the calling process's). */
  owner?: number;
}

export interface StartResult {
  record: VmRecord;
  /** Steps that ran, in order, and milliseconds per step. */
  done: string[];
  timings: Record<string, number>;
  warnings: string[];
}

/** One row of a listing: the record, or why it could not be read (the rest of the list still shows). */
export interface ListEntry {
  name: string;
  record: VmRecord | null;
  error?: Record<string, unknown>;
}

export interface VmService {
  readonly stateRoot: string;
  /** The live event stream (a daemon's); null in-process, where nothing outlives the verb. */
  readonly events: VmEvents | null;
  /** This service acting for `requestor` (recorded as owner at create, and on events). */
  as(requestor: Requestor): VmService;
  create(src: SpecSource, o?: CreateOptions): Promise<VmRecord>;
  /** `paused`: every step but cont (QEMU waits, phase paused) until `resume`; the containerd shim's Create. */
  start(name: string, o?: { paused?: boolean }): Promise<StartResult>;
  stop(name: string, o?: StopOptions): Promise<VmRecord>;
  kill(name: string): Promise<VmRecord>;
  pause(name: string): Promise<VmRecord>;
  resume(name: string): Promise<VmRecord>;
  restart(name: string, o?: StopOptions): Promise<VmRecord>;
  /** Deletes a VM that is not running; `force` kills it first. */
  delete(name: string, o?: { force?: boolean }): Promise<void>;
  /** The record, reconciled with reality (`deep`: QMP is asked whether the vCPUs run). */
  get(name: string, o?: { deep?: boolean }): Promise<VmRecord>;
  list(): Promise<ListEntry[]>;
  inspect(name: string): Promise<Inspection>;
  qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown>;
  /** Disk hot-plug (vm/hotplug); absent where not served yet (the HTTP API client). */
  attachDisk?(name: string, req: DiskAttachRequest): Promise<HotplugResult>;
  detachDisk?(name: string, disk: string, o?: { liveOnly?: boolean; waitMs?: number }): Promise<HotplugResult>;
  resizeDisk?(name: string, disk: string, bytes: number): Promise<ResizeResult>;
  setDiskLimits?(name: string, disk: string, c: LimitsChange): Promise<LimitsResult>;
  /** NIC hot-plug (vm/hotplug-nic). */
  attachNic?(name: string, req: NicAttachRequest): Promise<NicHotplugResult>;
  detachNic?(name: string, nic: string, o?: { liveOnly?: boolean; waitMs?: number }): Promise<NicHotplugResult>;
  /** Attaches a terminal to the serial console until the detach key (Ctrl-]), the end of input or the console closing. */
  console(name: string, io: ConsoleIo, o?: { force?: boolean }): Promise<ConsoleEnd>;
  /** Writes the serial log (rotated part first) to `out`; `follow` keeps writing while the VM runs. Returns the bytes written. */
  logs(name: string, out: NodeJS.WritableStream, o?: { follow?: boolean }): Promise<number>;
  /**
   * Saves a running or paused VM's state into `file` (created by the manager) and stops it (vm/state).
   * Optional, so a VmService written without it still compiles (the CLI then says USAGE_DAEMON_UNSUPPORTED).
   */
  save?(name: string, file: string): Promise<SaveResult>;
  /** Starts the VM of a save file (or `name`), jailed as any start, continuing where it was saved. Optional as save. */
  restore?(file: string, o?: { name?: string }): Promise<RestoreResult>;
  /** External disk snapshots (vm/snapshot); optional as save, so a VmService written without them still compiles. */
  snapshotCreate?(name: string, o?: { snap?: string; memory?: boolean }): Promise<SnapshotResult>;
  snapshotList?(name: string): Promise<SnapshotInfo[]>;
  snapshotRevert?(name: string, snap: string): Promise<RevertResult>;
  snapshotDelete?(name: string, snap: string): Promise<SnapshotResult>;
  /** Live migration to another daemon (vm/migrate-run); optional as save. */
  migrate?(name: string, target: MigrationTarget, o?: MigrateOptions): Promise<MigrateResult>;
  /** Cancels the migration of `name` in progress (migrate_cancel); the VM runs on here. */
  migrateCancel?(name: string): Promise<void>;
  /** The target side: defines and launches the VM waiting for the stream; resolves once it may be sent (a daemon's only). */
  migrateIn?(spec: Record<string, unknown>, o: { name?: string; listenHost: string; insecure?: boolean; copies?: DiskCopy[] }): Promise<IncomingMigration>;
  close(): Promise<void>;
}

/** A target ready for the stream: where to send it, and the start that ends once the VM runs (or fails and is undone). */
export interface IncomingMigration { name: string; address: MigrationAddress; nbd?: NbdAddress; done: Promise<RestoreResult> }

export interface SaveResult { record: VmRecord; migration: MigrationFigures }
export interface RestoreResult extends StartResult { migration?: MigrationFigures }
/** A revert: the record, and the start's steps when it started the VM again (with the memory state's figures). */
export interface RevertResult { record: VmRecord; done?: string[]; timings?: Record<string, number>; migration?: MigrationFigures }

/** The serial log of a VM whose files this process can read: until it no longer runs. */
export function logsFromFiles(svc: VmService, store: StateStore, name: string, out: NodeJS.WritableStream, follow: boolean): Promise<number> {
  return printSerialLog(store, name, out, { follow, stopped: async () => {
    const r = await svc.get(name).catch(() => null);
    return r === null || (r.phase !== 'running' && r.phase !== 'paused' && r.phase !== 'starting');
  } });
}

/** The verbs of one process's lifetime: each takes the VM's lock file for its duration. */
export class LocalService implements VmService {
  readonly events = null;

  constructor(readonly manager: VmManager) {}

  as(_requestor: Requestor): VmService {
    return this;
  }

  get stateRoot(): string {
    return this.manager.store.root;
  }

  paths(name: string): VmPaths {
    return this.manager.store.paths(name);
  }

  create(src: SpecSource, o: CreateOptions = {}): Promise<VmRecord> {
    const owner = o.owner ?? process.getuid?.() ?? 0;
    if ('file' in src) return this.manager.create(src.file, o.name, owner);
    return this.manager.createFromText(src.text, src.origin ?? '/api-request.yaml', { owner, ...(o.name === undefined ? {} : { name: o.name }) });
  }

  async start(name: string, o: { paused?: boolean } = {}): Promise<StartResult> {
    const r = await this.manager.start(name, o);
    return { record: r.record, done: r.run.done, timings: r.run.timings, warnings: r.warnings };
  }

  stop(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.manager.stop(name, o); }
  kill(name: string): Promise<VmRecord> { return this.manager.kill(name); }
  pause(name: string): Promise<VmRecord> { return this.manager.pause(name); }
  resume(name: string): Promise<VmRecord> { return this.manager.resume(name); }
  restart(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.manager.restart(name, o); }

  async delete(name: string, o: { force?: boolean } = {}): Promise<void> {
    if (o.force === true) {
      const rec = await this.manager.reconcile(name);
      if (rec.phase === 'running' || rec.phase === 'paused' || rec.phase === 'stopping' || rec.phase === 'starting') await this.manager.kill(name);
    }
    await this.manager.delete(name);
  }

  get(name: string, o: { deep?: boolean } = {}): Promise<VmRecord> {
    return this.manager.reconcile(name, o.deep === true);
  }

  async list(): Promise<ListEntry[]> {
    const out: ListEntry[] = [];
    for (const name of await this.manager.store.list()) {
      try {
        out.push({ name, record: await this.manager.reconcile(name, true).catch(() => this.manager.store.read(name)) });
      } catch (err) {
        if (isVmError(err, 'VM_NOT_FOUND')) continue; // a directory without a record: being created or deleted
        out.push({ name, record: null, error: asWardenError(err).toJSON() });
      }
    }
    return out;
  }

  async inspect(name: string): Promise<Inspection> {
    return inspectRecord(this.manager.fs, this.manager.store, await this.manager.reconcile(name, true));
  }

  qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.manager.qmp(name, command, args);
  }

  attachDisk(name: string, req: DiskAttachRequest): Promise<HotplugResult> { return this.manager.attachDisk(name, req); }
  detachDisk(name: string, disk: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<HotplugResult> { return this.manager.detachDisk(name, disk, o); }
  resizeDisk(name: string, disk: string, bytes: number): Promise<ResizeResult> { return this.manager.resizeDisk(name, disk, bytes); }
  setDiskLimits(name: string, disk: string, c: LimitsChange): Promise<LimitsResult> { return this.manager.setDiskLimits(name, disk, c); }
  attachNic(name: string, req: NicAttachRequest): Promise<NicHotplugResult> { return this.manager.attachNic(name, req); }
  detachNic(name: string, nic: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<NicHotplugResult> { return this.manager.detachNic(name, nic, o); }

  console(name: string, io: ConsoleIo): Promise<ConsoleEnd> {
    return attachLocked(this.manager.store, name, io);
  }

  logs(name: string, out: NodeJS.WritableStream, o: { follow?: boolean } = {}): Promise<number> {
    return logsFromFiles(this, this.manager.store, name, out, o.follow === true);
  }

  save(name: string, file: string): Promise<SaveResult> { return this.manager.save(name, file); }

  async restore(file: string, o: { name?: string } = {}): Promise<RestoreResult> {
    const r = await this.manager.restore(file, o);
    return { record: r.record, done: r.run.done, timings: r.run.timings, warnings: r.warnings, ...(r.migration === undefined ? {} : { migration: r.migration }) };
  }

  snapshotCreate(name: string, o: { snap?: string; memory?: boolean } = {}): Promise<SnapshotResult> { return this.manager.snapshotCreate(name, o); }
  snapshotList(name: string): Promise<SnapshotInfo[]> { return this.manager.snapshotList(name); }
  snapshotDelete(name: string, snap: string): Promise<SnapshotResult> { return this.manager.snapshotDelete(name, snap); }
  async snapshotRevert(name: string, snap: string): Promise<RevertResult> { return revertResult(await this.manager.snapshotRevert(name, snap)); }
  migrate(name: string, target: MigrationTarget, o: MigrateOptions = {}): Promise<MigrateResult> { return this.manager.migrateOut(name, target, o); }

  async close(): Promise<void> { /* nothing held between verbs */ }
}

/** The manager's revert outcome as the service reports it. */
export function revertResult(r: Awaited<ReturnType<VmManager['snapshotRevert']>>): RevertResult {
  return { record: r.record, ...(r.run === undefined ? {} : { done: r.run.done, timings: r.run.timings }), ...(r.migration === undefined ? {} : { migration: r.migration }) };
}

export function asWardenError(err: unknown): WardenError {
  return err instanceof WardenError ? err : new WardenError('INTERNAL', String((err as Error)?.message ?? err), { cause: err });
}
