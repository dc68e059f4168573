/**
 * @module vm/manager: the lifecycle verbs. Each takes the VM's lock, reconciles the record
 * with reality, checks the state machine, acts, and records the outcome. Nothing here
 * depends on the process that started a VM: every fact is re-read from the record, /proc
 * and the QMP socket.
 */
import { closeSync, fsyncSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { SpecReadError } from '../spec/index.js';
import type { Fs } from '../sys/index.js';
import { VmError, isVmError } from './errors.js';
import { attachDisk, detachDisk, finishRemovals, resizeDisk, type DiskAttachRequest, type HotplugResult, type ResizeResult } from './hotplug.js';
import { setDiskLimits, type LimitsChange, type LimitsResult } from './disk-limits.js';
import { attachNic, detachNic, type NicAttachRequest, type NicHotplugResult } from './hotplug-nic.js';
import { OpenFds } from './fds.js';
import { assertAllowed, expectsProcess, type Action } from './machine.js';
import { signalProc } from './proc.js';
import { START_STEPS, type StartCtx } from './start.js';
import { createSaveFile, openSaveFile } from './savefile.js';
import { restoreSteps, saveToFd, type MigrationFigures } from './state.js';
import { checkRevert, createSnapshot, findSnapshot, listSnapshots, revertDisks, type CreateRequest, type SnapshotInfo, type SnapshotResult } from './snapshot.js';
import { deleteSnapshot } from './snapshot-merge.js';
import { incomingSteps, type IncomingLink } from './migrate.js';
import { loadHostPolicy } from '../image/index.js';
import { createDiskCopies, type DiskCopy } from './migrate-disks.js';
import { runMigrateOut, type MigrateOptions, type MigrateResult, type MigrationTarget } from './migrate-run.js';
import type { Step } from './steps.js';
import { runSteps, silentProgress, type BeforeStep, type Progress, type StepRun } from './steps.js';
import { endRun, waitGone, type TeardownDeps } from './teardown.js';
import { holdQmp, reconcileLocked, withQmp } from './reconcile.js';
import { stopRun, type StopOptions } from './stop.js';
import type { Backends, SpecView } from './ports.js';
import type { StateStore } from './store.js';
import type { HelperRun, VmRecord } from './record.js';
import type { ProgramExit } from './ports.js';

export interface ManagerOptions {
  store: StateStore;
  backends: Backends;
  fs: Fs;
  progress?: Progress;
  /** Fault injection: runs before each start step (tests stop the manager there). */
  beforeStep?: BeforeStep;
}

export type { StopOptions };

export class VmManager {
  readonly store: StateStore;
  readonly fs: Fs;
  private readonly d: TeardownDeps;
  private readonly progress: Progress;

  constructor(private readonly o: ManagerOptions) {
    this.store = o.store;
    this.fs = o.fs;
    this.d = { fs: o.fs, store: o.store, backends: o.backends, now: () => new Date().toISOString() };
    this.progress = o.progress ?? silentProgress;
  }

  /** How a helper of a run ended, if its launcher recorded it (the supervisor's helper-died event). */
  helperExit(h: HelperRun): Promise<ProgramExit | null> {
    return this.o.backends.jail.exitOf(h.jailName, h.statusFile);
  }

  /** Validates a spec file and records a new VM (phase created). */
  async create(file: string, nameOverride?: string, owner = process.getuid?.() ?? 0): Promise<VmRecord> {
    const path = resolve(file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (cause) {
      throw new SpecReadError(path, cause); // as validate and plan say it: SPEC_READ, exit 2
    }
    return this.createFromText(text, path, { ...(nameOverride === undefined ? {} : { name: nameOverride }), owner, specFile: path });
  }

  /**
   * Validates a spec's text and records a new VM. `origin` names the text in spec errors and
   * is the directory relative paths resolve against (a file path, or a name under `/` for an API body).
   */
  async createFromText(text: string, origin: string, o: { name?: string; owner: number; specFile?: string }): Promise<VmRecord> {
    const spec = this.o.backends.parseSpec(text, origin);
    if (o.name !== undefined) spec['name'] = o.name;
    const now = this.d.now();
    const rec: VmRecord = { version: 1, name: String(spec['name']), phase: 'created', spec, ...(o.specFile === undefined ? {} : { specFile: o.specFile }),
      owner: o.owner, createdAt: now, updatedAt: now };
    await this.store.create(rec);
    return rec;
  }

  /** Runs `fn` holding the VM's lock, on the reconciled record. */
  private async locked<T>(name: string, op: Action, fn: (rec: VmRecord, d: TeardownDeps) => Promise<T>): Promise<T> {
    await this.store.read(name);
    const lock = await this.store.lock(name, op);
    const held = op === 'qmp' ? holdQmp(this.d) : null; // the reconcile's query-status and the verb on one connection
    try {
      const d = held?.d ?? this.d;
      const rec = await reconcileLocked(d, await this.store.read(name), op === 'inspect' || op === 'qmp');
      assertAllowed(name, rec.phase, op);
      return await fn(rec, d);
    } finally {
      await held?.close();
      await lock.release();
    }
  }

  /**
   * Starts the VM. `paused`: every step but `cont`, so QEMU waits with its vCPUs stopped
   * (phase paused) until `cont` (a containerd task's Create, then Start).
   */
  async start(name: string, o: { paused?: boolean } = {}): Promise<{ record: VmRecord; run: StepRun; warnings: string[] }> {
    return this.runStart(name, START_STEPS, o);
  }

  private async runStart(name: string, all: ReadonlyArray<Step<StartCtx>>, o: { paused?: boolean }): Promise<{ record: VmRecord; run: StepRun; warnings: string[] }> {
    const steps = o.paused === true ? all.filter((s) => s.name !== 'cont') : all;
    return this.locked(name, 'start', async ({ saved: _saved, ...rec }) => {
      const c: StartCtx = { d: this.d, rec: { ...rec, warnings: [] }, spec: rec.spec as unknown as SpecView, paths: this.store.paths(name),
        warnings: [], kvmUsable: false, chains: {}, fds: new OpenFds() };
      this.progress.begin(`starting VM ${name}`);
      try {
        const run = await runSteps(steps, c, this.progress, this.o.beforeStep);
        if (o.paused === true) {
          c.rec = { ...c.rec, phase: 'paused', updatedAt: this.d.now(), warnings: c.warnings };
          await this.store.write(c.rec);
        }
        for (const w of c.warnings) this.progress.warn(w);
        this.progress.end(`VM ${name} is ${o.paused === true ? 'paused (vCPUs not started)' : 'running'}`);
        return { record: c.rec, run, warnings: c.warnings };
      } catch (err) {
        await c.fds.close(true);
        await endRun(this.d, c.rec, { reason: 'start-failed', detail: String((err as Error)?.message ?? err).split('\n')[0] ?? '' });
        throw err;
      } finally {
        await c.qmp?.close().catch(() => undefined);
      }
    });
  }

  /**
   * Saves the VM's state into `file` (created here, never over an existing file) and stops
   * QEMU; the record keeps the file (`saved`). A failed save leaves the VM as it was.
   */
  async save(name: string, file: string): Promise<{ record: VmRecord; migration: MigrationFigures }> {
    return this.locked(name, 'save', async (rec) => {
      const path = resolve(file);
      this.progress.begin(`saving VM ${name} to ${path}`);
      const fd = createSaveFile(path, { name, spec: rec.spec, savedAt: this.d.now() });
      let migration: MigrationFigures;
      try {
        migration = await withQmp(this.d, rec, (q) => saveToFd(q, fd, name));
        fsyncSync(fd);
      } catch (err) {
        rmSync(path, { force: true });
        throw err;
      } finally {
        closeSync(fd);
      }
      const stopping: VmRecord = { ...rec, phase: 'stopping', intent: 'stop', updatedAt: this.d.now() };
      await this.store.write(stopping);
      const out: VmRecord = { ...(await stopRun(this.d, stopping, { force: true }, this.progress)), saved: { file: path, at: this.d.now(), migration: { ...migration } } };
      await this.store.write(out);
      this.progress.end(`VM ${name} is saved in ${path} and ${out.phase}`);
      return { record: out, migration };
    });
  }

  /**
   * Starts a VM from a save file: the VM named in it (or `o.name`), defined from the file's
   * spec when no such VM exists, jailed as any start, its state loaded from the file's fd.
   */
  async restore(file: string, o: { name?: string; owner?: number } = {}): Promise<{ record: VmRecord; run: StepRun; warnings: string[]; migration?: MigrationFigures }> {
    const { fd, header } = openSaveFile(resolve(file));
    try {
      const name = o.name ?? header.name;
      if ((await this.store.tryRead(name)) === null) {
        await this.createFromText(JSON.stringify({ ...header.spec, name }), '/restore.json', { name, owner: o.owner ?? process.getuid?.() ?? 0 });
      }
      const figures: { migration?: MigrationFigures } = {};
      const r = await this.runStart(name, restoreSteps(fd, figures), {});
      return { ...r, ...(figures.migration === undefined ? {} : { migration: figures.migration }) };
    } finally {
      closeSync(fd);
    }
  }

  /** Live migration, source side: the VM moves to `target` and is removed here once the target runs it (vm/migrate-run). */
  async migrateOut(name: string, target: MigrationTarget, o: MigrateOptions = {}): Promise<MigrateResult> {
    return this.locked(name, 'migrate', (rec) => runMigrateOut(this.d, this.progress, rec, target, o));
  }

  /**
   * Live migration, target side: defines the VM from the source's spec and starts it with QEMU
   * waiting for the stream `accept` returns (vm/migrate); on failure the start is undone and the
   * VM removed, so the target is left with nothing.
   */
  async migrateIn(spec: Record<string, unknown>, o: { name: string; owner: number; link: IncomingLink; copies?: DiskCopy[] }): Promise<{ record: VmRecord; run: StepRun; warnings: string[]; migration?: MigrationFigures }> {
    const rec = await this.createFromText(JSON.stringify({ ...spec, name: o.name }), '/migrate-in.json', { name: o.name, owner: o.owner });
    await this.store.write({ ...rec, incomingSince: this.d.now() });
    const figures: { migration?: MigrationFigures } = {};
    let removeCopies = (): void => undefined;
    try {
      removeCopies = createDiskCopies(o.copies ?? [], o.name, o.copies === undefined ? { file: null, imageDirs: [] } : loadHostPolicy());
      const link = { ...o.link, ...(o.copies === undefined ? {} : { disks: o.copies.map((c) => c.name) }) };
      const r = await this.runStart(o.name, incomingSteps(link, figures), {});
      const { incomingSince: _since, ...record } = r.record;
      await this.store.write(record);
      return { ...r, record, ...(figures.migration === undefined ? {} : { migration: figures.migration }) };
    } catch (err) {
      // Kept only when a host change could not be undone (the record is what retries it).
      const left = await this.store.tryRead(o.name).catch(() => null);
      if ((left?.undo ?? []).length === 0) await this.store.remove(o.name).catch(() => undefined);
      removeCopies();
      throw err;
    }
  }

  /** ACPI powerdown (unless forced), then quit, then SIGKILL; waits for the end and tears down. */
  async stop(name: string, o: StopOptions = {}): Promise<VmRecord> {
    return this.locked(name, 'stop', async (rec0) => {
      const rec: VmRecord = { ...rec0, phase: 'stopping', intent: 'stop', updatedAt: this.d.now() };
      await this.store.write(rec);
      this.progress.begin(`stopping VM ${name}`);
      // A paused guest cannot answer the power button: waiting for it would only run out the timeout.
      const paused = rec0.phase === 'paused' && o.force !== true;
      if (paused) this.progress.warn(`VM ${name} is paused, so its guest cannot answer the ACPI power button: quitting QEMU (resume it first for a graceful stop)`);
      const out = await stopRun(this.d, rec, paused ? { ...o, force: true } : o, this.progress);
      this.progress.end(`VM ${name} is ${out.phase}: ${out.lastExit?.detail ?? ''}`);
      return out;
    });
  }

  async kill(name: string): Promise<VmRecord> {
    return this.locked(name, 'kill', async (rec0) => {
      const rec: VmRecord = { ...rec0, intent: 'kill', updatedAt: this.d.now() };
      await this.store.write(rec);
      if (rec.run) await signalProc(this.d.fs, rec.run.qemu, 'SIGKILL');
      await waitGone(this.d.fs, rec.run?.qemu, 5000);
      return endRun(this.d, rec, { intent: 'kill' });
    });
  }

  async pause(name: string): Promise<VmRecord> {
    return this.setRunState(name, 'pause', 'stop', 'paused');
  }

  async resume(name: string): Promise<VmRecord> {
    return this.setRunState(name, 'resume', 'cont', 'running');
  }

  /** Runs the vCPUs of a VM started with `{ paused: true }` (QMP cont, as resume does). */
  async cont(name: string): Promise<VmRecord> {
    return this.resume(name);
  }

  private async setRunState(name: string, op: Action, command: string, want: 'paused' | 'running'): Promise<VmRecord> {
    return this.locked(name, op, async (rec) => {
      const status = await withQmp(this.d, rec, async (q) => {
        await q.execute(command);
        return ((await q.execute('query-status')) as { status: string }).status;
      });
      if (status !== want) throw new VmError('VM_QMP', `VM ${name} is "${status}" after ${command}, expected ${want}`, { context: { vm: name, status } });
      const out: VmRecord = { ...rec, phase: want, updatedAt: this.d.now() };
      await this.store.write(out);
      return out;
    });
  }

  async restart(name: string, o: StopOptions = {}): Promise<VmRecord> {
    const rec = await this.reconcile(name);
    assertAllowed(name, rec.phase, 'restart');
    if (expectsProcess(rec.phase)) await this.stop(name, o);
    return (await this.start(name)).record;
  }

  async delete(name: string): Promise<void> {
    await this.locked(name, 'delete', async (rec) => {
      // locked() already retried any teardown left over; what still fails must not be forgotten.
      if ((rec.undo ?? []).length > 0) {
        throw new VmError('VM_TEARDOWN_FAILED', `cannot delete VM ${name}: host changes of its last run could not be undone`, {
          context: { vm: name, undo: rec.undo, warnings: rec.warnings ?? [] }, suggestions: ['see the warnings in: warden inspect ' + name],
        });
      }
      // Removed while the lock is held: released first, a concurrent start could run QEMU in a directory about to go.
      await this.store.remove(name);
    });
  }

  /** Runs one QMP command on a running VM and returns QEMU's reply. */
  async qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, (q) => q.execute(command, args)));
  }

  /** Hot-plugs a disk into the running VM (vm/hotplug). */
  async attachDisk(name: string, req: DiskAttachRequest): Promise<HotplugResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, async (q) => (await attachDisk(this.d, rec, q, req)).result));
  }

  /** Detaches a hot-plugged disk (state `removing` when the guest has not let go within `waitMs`). */
  async detachDisk(name: string, disk: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<HotplugResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, async (q) => (await detachDisk(this.d, rec, q, disk, o)).result));
  }

  /** Hot-plugs a NIC into the running VM (vm/hotplug-nic). */
  async attachNic(name: string, req: NicAttachRequest): Promise<NicHotplugResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, async (q) => (await attachNic(this.d, rec, q, req)).result));
  }

  /** Detaches a hot-plugged NIC (state `removing` when the guest has not let go within `waitMs`). */
  async detachNic(name: string, nic: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<NicHotplugResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, async (q) => (await detachNic(this.d, rec, q, nic, o)).result));
  }

  /** Grows a disk's top layer while the VM runs (refuses to shrink). */
  async resizeDisk(name: string, disk: string, bytes: number): Promise<ResizeResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, (q) => resizeDisk(rec, q, disk, bytes)));
  }

  /** Finishes the removal of every `removing` disk QEMU no longer has (the daemon runs it on DEVICE_DELETED). */
  async finishRemovals(name: string): Promise<VmRecord> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, (q) => finishRemovals(this.d, rec, q)));
  }

  /** Changes a running disk's I/O limits (vm/disk-limits); the stored spec follows unless live-only. */
  async setDiskLimits(name: string, disk: string, c: LimitsChange): Promise<LimitsResult> {
    return this.locked(name, 'qmp', (rec, d) => withQmp(d, rec, async (q) => (await setDiskLimits(this.d, rec, q, disk, c)).result));
  }

  /** Takes an external snapshot of the VM's disks (and RAM with `memory`), running or stopped (vm/snapshot). */
  async snapshotCreate(name: string, req: CreateRequest): Promise<SnapshotResult> {
    return this.locked(name, 'snapshot', (rec) => (expectsProcess(rec.phase)
      ? withQmp(this.d, rec, async (q) => (await createSnapshot(this.d, rec, q, req)).result)
      : createSnapshot(this.d, rec, null, req).then((r) => r.result)));
  }

  async snapshotList(name: string): Promise<SnapshotInfo[]> {
    return listSnapshots(await this.store.read(name));
  }

  /** Merges the snapshot's layer away while the VM runs (block-commit), or drops a snapshot no longer in the chain. */
  async snapshotDelete(name: string, snap: string): Promise<SnapshotResult> {
    const merge = (): Promise<SnapshotResult> => this.locked(name, 'snapshot', (rec) => (expectsProcess(rec.phase)
      ? withQmp(this.d, rec, async (q) => (await deleteSnapshot(this.d, rec, q, snap)).result)
      : deleteSnapshot(this.d, rec, null, snap).then((r) => r.result)));
    try {
      return await merge();
    } catch (err) {
      if (!isVmError(err, 'VM_INVALID_STATE') || err.context['needsQemu'] !== true) throw err;
    }
    // A stopped VM's layer is merged by its own QEMU, started paused in its jail (the guest never runs), then quit.
    this.progress.info(`VM ${name} is not running: starting its QEMU paused to merge snapshot ${snap}`);
    await this.start(name, { paused: true });
    try {
      return await merge();
    } finally {
      await this.stop(name, { force: true });
    }
  }

  /**
   * Reverts the VM to a snapshot: stops it (quit: its current state is being discarded), puts a
   * fresh overlay over each frozen layer, then starts it (restoring the RAM state when the
   * snapshot has one) if it was taken of a running VM; a disk-only snapshot of a stopped VM leaves it stopped.
   */
  async snapshotRevert(name: string, snap: string): Promise<{ record: VmRecord; run?: StepRun; migration?: MigrationFigures }> {
    const r = await this.locked(name, 'snapshot', async (rec0) => {
      const s = findSnapshot(rec0, snap);
      let rec = rec0;
      await checkRevert(rec, snap); // its directories as recorded, before the VM is stopped
      if (expectsProcess(rec.phase)) {
        this.progress.begin(`stopping VM ${name} to revert it to snapshot ${snap}`);
        rec = { ...rec, phase: 'stopping', intent: 'stop', updatedAt: this.d.now() };
        await this.store.write(rec);
        rec = await stopRun(this.d, rec, { force: true }, this.progress);
      }
      rec = await revertDisks(this.d, rec, snap);
      return { rec, start: s.memory !== undefined || s.vmPhase === 'running' || s.vmPhase === 'paused', memory: s.memory };
    });
    if (!r.start) return { record: r.rec };
    if (r.memory === undefined) { const s = await this.runStart(name, START_STEPS, {}); return { record: s.record, run: s.run }; }
    const { fd } = openSaveFile(r.memory);
    try {
      const figures: { migration?: MigrationFigures } = {};
      const s = await this.runStart(name, restoreSteps(fd, figures), {});
      return { record: s.record, run: s.run, ...(figures.migration === undefined ? {} : { migration: figures.migration }) };
    } finally {
      closeSync(fd);
    }
  }

  /** The record after reconciling it (skipped while another process holds the VM's lock). */
  async reconcile(name: string, deep = false): Promise<VmRecord> {
    const rec = await this.store.read(name);
    let lock;
    try {
      lock = await this.store.lock(name, 'reconcile');
    } catch (err) {
      if (err instanceof VmError && err.code === 'VM_BUSY') return rec;
      throw err;
    }
    try {
      return await reconcileLocked(this.d, await this.store.read(name), deep);
    } finally {
      await lock.release();
    }
  }

  async list(): Promise<VmRecord[]> {
    const out: VmRecord[] = [];
    for (const name of await this.store.list()) out.push(await this.reconcile(name, true).catch(() => this.store.read(name)));
    return out;
  }

}
