/**
 * @module api/remote: `RemoteService`, the VmService of a CLI whose state root a daemon
 * owns: every verb is a request to the daemon (state changes wait for their operation), so
 * the CLI and the daemon never race on a VM. Spec files are read and their paths resolved
 * here, where the file is, and sent as JSON.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { WardenError } from '../errors/index.js';
// The vm modules these come from, not the vm barrel: a CLI verb the daemon serves must not initialise the whole lifecycle (issue 16).
import { attachConsole } from '../vm/console.js';
import { replayProgress } from '../vm/events.js';
import { terminalProgress } from '../vm/progress.js';
import type { ConsoleEnd, ConsoleIo, CreateOptions, DiskAttachRequest, HotplugResult, LimitsChange, LimitsResult, NicAttachRequest, NicHotplugResult, ResizeResult, OpenOptions, Inspection, ListEntry, Operation, RestoreResult, RevertResult, SaveResult, SnapshotInfo, SnapshotResult, MigrateOptions, MigrateResult, MigrationTarget, SpecSource, StartResult, StopOptions, VmRecord, VmService } from '../vm/index.js';
import type { ApiClient } from './client.js';
import type { StateAction } from './schemas.js';

/** How long a verb waits for its operation (the daemon keeps it running if we go). */
const WAIT_S = 3600;

export class RemoteService implements VmService {
  readonly events = null;

  /** `progress.err` gets one line per finished state change (the daemon runs the steps; the CLI prints none). */
  constructor(readonly client: ApiClient, readonly stateRoot: string, private readonly progress?: OpenOptions['progress']) {}

  as(): VmService {
    return this; // the daemon knows the caller from the socket
  }

  async create(src: SpecSource, o: CreateOptions = {}): Promise<VmRecord> {
    // Only create parses a spec here: the other verbs do not load the spec module (zod, yaml).
    const { parseSpec, resolveSpecPaths, SpecReadError } = await import('../spec/index.js');
    let spec: Record<string, unknown>;
    if ('file' in src) {
      const path = resolve(src.file);
      let text: string;
      try { text = readFileSync(path, 'utf8'); } catch (cause) { throw new SpecReadError(path, cause); }
      spec = resolveSpecPaths(parseSpec(text, path), dirname(path)) as unknown as Record<string, unknown>;
    } else {
      spec = parseSpec(src.text, src.origin ?? '/request-body.yaml') as unknown as Record<string, unknown>;
    }
    if (o.name !== undefined) spec['name'] = o.name;
    return this.client.createVm(spec);
  }

  private async act<T>(name: string, action: StateAction, extra: { timeout?: number; force?: boolean; paused?: boolean } = {}): Promise<T> {
    // The daemon publishes the steps as progress events of this VM: shown here as the direct mode shows them.
    const p = this.progress === undefined ? undefined : 'err' in this.progress ? terminalProgress(this.progress) : this.progress;
    let ended = false;
    const steps = p === undefined ? undefined : this.client.events({ vm: [name], type: ['progress'] }, (e) => {
      const data = (e as { data?: Record<string, unknown> }).data ?? {};
      if (data['kind'] === 'end') ended = true;
      replayProgress(p, data);
    });
    try {
      await steps?.ready;
      const op = await this.client.setState(name, { action, ...extra }, WAIT_S);
      const result = (op.status === 'running' ? (await this.client.waitOperation(op.id, WAIT_S)).result : op.result) as T;
      const rec = (result as { record?: VmRecord })?.record ?? (result as VmRecord | undefined);
      if (p !== undefined && !ended) await new Promise((r) => setTimeout(r, 20)); // the last progress events may still be on their way
      if (!ended) p?.info(`VM ${name} is ${rec?.phase ?? '?'} (${action} by wardend)`);
      return result;
    } finally {
      steps?.stop();
    }
  }

  /** The daemon opens the file (the path resolves here, where the caller is); admins only (POST .../save). */
  async save(name: string, file: string): Promise<SaveResult> {
    return this.outcome(await this.client.saveVm(name, resolve(file), WAIT_S));
  }

  async restore(file: string, o: { name?: string } = {}): Promise<RestoreResult> {
    return this.outcome(await this.client.restoreVm(resolve(file), o.name, WAIT_S));
  }

  async snapshotCreate(name: string, o: { snap?: string; memory?: boolean } = {}): Promise<SnapshotResult> {
    return this.outcome(await this.client.createSnapshot(name, { ...(o.snap === undefined ? {} : { name: o.snap }), ...(o.memory === undefined ? {} : { memory: o.memory }) }, WAIT_S));
  }

  async snapshotList(name: string): Promise<SnapshotInfo[]> { return (await this.client.listSnapshots(name)) as SnapshotInfo[]; }
  async snapshotRevert(name: string, snap: string): Promise<RevertResult> { return this.outcome(await this.client.revertSnapshot(name, snap, WAIT_S)); }
  async snapshotDelete(name: string, snap: string): Promise<SnapshotResult> { return this.outcome(await this.client.deleteSnapshot(name, snap, WAIT_S)); }
  /** The source daemon migrates; its progress events (QEMU's figures) are shown here as they come. */
  async migrate(name: string, target: MigrationTarget, o: MigrateOptions = {}): Promise<MigrateResult> {
    const p = this.progress === undefined ? undefined : 'err' in this.progress ? terminalProgress(this.progress) : this.progress;
    const steps = p === undefined ? undefined : this.client.events({ vm: [name], type: ['progress'] }, (e) => replayProgress(p, (e as { data?: Record<string, unknown> }).data ?? {}));
    try {
      await steps?.ready;
      const body = { target: target.to, ...(target.address === undefined ? {} : { address: target.address }), ...(target.insecureNetwork === true ? { insecureNetwork: true } : {}), ...(o.maxBandwidth === undefined ? {} : { maxBandwidth: o.maxBandwidth }),
        ...(o.copyStorage === undefined ? {} : { copyStorage: o.copyStorage }), ...(o.pathMap === undefined ? {} : { pathMap: o.pathMap }) };
      return await this.outcome(await this.client.migrateVm(name, body, WAIT_S));
    } finally {
      steps?.stop();
    }
  }

  migrateCancel(name: string): Promise<void> { return this.client.cancelMigration(name); }

  /** An operation's result once it has finished; its error, with its code, when it failed. */
  private async outcome<T>(op0: Operation): Promise<T> {
    const op = op0.status === 'running' ? await this.client.waitOperation(op0.id, WAIT_S) : op0;
    if (op.status === 'failed') throw new WardenError(String(op.error?.['code'] ?? 'INTERNAL'), String(op.error?.['message'] ?? `operation ${op.id} failed`), { context: { operation: op.id } });
    return op.result as T;
  }

  private stopBody(o: StopOptions): { timeout?: number; force?: boolean } {
    return { ...(o.timeoutS === undefined ? {} : { timeout: o.timeoutS }), ...(o.force === undefined ? {} : { force: o.force }) };
  }

  start(name: string, o: { paused?: boolean } = {}): Promise<StartResult> { return this.act(name, 'start', o.paused === true ? { paused: true } : {}); }
  stop(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.act(name, 'stop', this.stopBody(o)); }
  kill(name: string): Promise<VmRecord> { return this.act(name, 'kill'); }
  pause(name: string): Promise<VmRecord> { return this.act(name, 'pause'); }
  resume(name: string): Promise<VmRecord> { return this.act(name, 'resume'); }
  restart(name: string, o: StopOptions = {}): Promise<VmRecord> { return this.act(name, 'restart', this.stopBody(o)); }
  delete(name: string, o: { force?: boolean } = {}): Promise<void> { return this.client.deleteVm(name, o.force === true); }
  get(name: string): Promise<VmRecord> { return this.client.getVm(name); }
  inspect(name: string): Promise<Inspection> { return this.client.inspectVm(name); }
  qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown> { return this.client.qmp(name, command, args); }

  async attachDisk(name: string, req: DiskAttachRequest): Promise<HotplugResult> {
    return this.deviceResult(await this.client.addDevice(name, { kind: 'disk', ...req }, WAIT_S));
  }

  async detachDisk(name: string, disk: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<HotplugResult> {
    const q = { ...(o.liveOnly === true ? { liveOnly: true } : {}), ...(o.waitMs === undefined ? {} : { timeout: o.waitMs / 1000 }) };
    return this.deviceResult(await this.client.removeDevice(name, disk, q, WAIT_S));
  }

  async attachNic(name: string, req: NicAttachRequest): Promise<NicHotplugResult> {
    return (await this.deviceResult(await this.client.addDevice(name, { kind: 'nic', ...req }, WAIT_S))) as unknown as NicHotplugResult;
  }

  async detachNic(name: string, nic: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<NicHotplugResult> {
    const q = { kind: 'nic' as const, ...(o.liveOnly === true ? { liveOnly: true } : {}), ...(o.waitMs === undefined ? {} : { timeout: o.waitMs / 1000 }) };
    return (await this.deviceResult(await this.client.removeDevice(name, nic, q, WAIT_S))) as unknown as NicHotplugResult;
  }

  async resizeDisk(name: string, disk: string, bytes: number): Promise<ResizeResult> {
    return (await this.client.patchDevice(name, disk, { size: bytes })) as ResizeResult;
  }

  async setDiskLimits(name: string, disk: string, c: LimitsChange): Promise<LimitsResult> {
    const body = { limits: c.set as Record<string, number>, ...(c.clear === true ? { clearLimits: true } : {}), ...(c.liveOnly === true ? { liveOnly: true } : {}) };
    return (await this.client.patchDevice(name, disk, body)) as LimitsResult;
  }

  /** A hot-plug operation's result once it ended; its error as a WardenError when it failed. */
  private async deviceResult(op: Operation): Promise<HotplugResult> {
    const done = op.status === 'running' ? await this.client.waitOperation(op.id, WAIT_S) : op;
    if (done.status === 'failed') {
      const e = done.error ?? {};
      throw new WardenError(String(e['code'] ?? 'INTERNAL'), String(e['message'] ?? `operation ${done.id} failed`), { context: { operation: done.id, ...(e['details'] as object | undefined) } });
    }
    if (done.status === 'running') throw new WardenError('VM_TIMEOUT', `operation ${done.id} (${done.action} on VM ${done.vm}) still runs after ${WAIT_S} s`, { context: { operation: done.id } });
    return done.result as HotplugResult;
  }

  async list(): Promise<ListEntry[]> {
    return (await this.client.listVms(true)).map((v) => ({ name: v.name, record: v.record ?? null, ...(v.error ? { error: v.error } : {}) }));
  }

  async console(name: string, io: ConsoleIo, o: { force?: boolean } = {}): Promise<ConsoleEnd> {
    return attachConsole(name, await this.client.openConsole(name, o.force === true), io);
  }

  logs(name: string, out: NodeJS.WritableStream, o: { follow?: boolean } = {}): Promise<number> {
    return this.client.streamLogs(name, out, o.follow === true);
  }

  async close(): Promise<void> { /* nothing held */ }
}
