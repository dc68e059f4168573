/**
 * @module vm/snapshot: external disk snapshots. The manager creates each overlay itself (O_EXCL,
 * next to the disk's current top, qcow2 bytes from image/overlay), probes it under the image
 * policy, opens it, and hands QEMU only the fd (add-fd, blockdev-add, one transaction of
 * blockdev-snapshot for all disks). Every step is recorded in the VM's record before it is made;
 * the next snapshot command settles an operation a killed process left. The spec follows the
 * chain (each disk's image is its top), so the next start opens the whole chain by fd.
 * Delete (the merge) is in vm/snapshot-merge.
 */
import { closeSync, fchownSync, fstatSync, fsyncSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { callerOwner, loadHostPolicy, ownerFromUid, qcow2Overlay, walkChainConfined, chainFiles, type ChainLayer, type ImageChain, type ImageFormat } from '../image/index.js';
import { planDiskDetach, planSnapshotCreate, type LiveLayer } from '../plan/index.js';
import type { Disk } from '../spec/index.js';
import { VmError } from './errors.js';
import { OpenFds } from './fds.js';
import type { QmpConn } from './ports.js';
import { createSaveFile } from './savefile.js';
import { DiskDir, removeFiles, type FileId } from './snapshot-dir.js';
import { saveToFd, type MigrationFigures } from './state.js';
import type { SnapshotEntry, SnapshotOp, SnapshotState, VmRecord } from './record.js';
import type { TeardownDeps } from './teardown.js';

const SNAP_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface SnapshotInfo {
  name: string;
  createdAt: string;
  vmPhase: string;
  memory: boolean;
  disks: Array<{ disk: string; base: string; overlay: string }>;
  /** Bytes the snapshot holds apart from its base: the overlay files made with it, and the memory file. */
  bytes: number;
  /** Its frozen layers are in the disks' chains now (false for one a revert to an earlier snapshot left behind). */
  current: boolean;
  /** A delete began and did not finish (running delete again finishes it). */
  deleting: boolean;
}

export interface SnapshotResult {
  vm: string;
  snapshot: SnapshotInfo;
  /** QMP commands made, in order (empty for a stopped VM). */
  steps: string[];
  migration?: MigrationFigures;
}

export const state = (rec: VmRecord): SnapshotState => rec.snapshots ?? { list: [], owned: [] };
export const disksOf = (rec: VmRecord): Disk[] => rec.spec['disks'] as Disk[];
const writable = (d: Disk): boolean => d.media === 'disk' && !d.readOnly;
const sizeOf = (p: string): number => { try { return statSync(p).size; } catch { return 0; } };

export async function save(d: TeardownDeps, rec: VmRecord, snapshots: SnapshotState, extra: Partial<VmRecord> = {}): Promise<VmRecord> {
  const out: VmRecord = { ...rec, ...extra, snapshots, updatedAt: d.now() };
  await d.store.write(out);
  return out;
}

export function notFound(rec: VmRecord, snap: string): VmError {
  return new VmError('VM_SNAPSHOT_NOT_FOUND', `VM ${rec.name} has no snapshot ${snap}`, {
    context: { vm: rec.name, snapshot: snap, snapshots: state(rec).list.map((s) => s.name) }, suggestions: [`warden snapshot list ${rec.name}`],
  });
}

/** The chain of a spec disk as it is on disk now, under the image policy (the same walk as start and hot-plug). */
export function walk(rec: VmRecord, disk: Disk, from: string): Promise<ImageChain> {
  // The VM's owner must be able to open every layer as QEMU gets it, as at start and hot-plug (review F1/F2).
  return walkChainConfined({ ...disk, from }, loadHostPolicy(), { owner: rec.owner === undefined ? callerOwner() : ownerFromUid(rec.owner) });
}

/** `chains`: each disk's layer paths now (top first); without them `current` is true when the overlay made with it is a disk's top. */
export function info(rec: VmRecord, s: SnapshotEntry, chains?: Map<string, string[]>): SnapshotInfo {
  const current = s.disks.every((x) => chains?.get(x.disk)?.includes(x.base) ?? disksOf(rec).some((d) => d.image === x.overlay));
  return {
    name: s.name, createdAt: s.createdAt, vmPhase: s.vmPhase, memory: s.memory !== undefined,
    disks: s.disks.map((x) => ({ disk: x.disk, base: x.base, overlay: x.overlay })),
    bytes: s.disks.reduce((n, x) => n + sizeOf(x.overlay), 0) + (s.memory === undefined ? 0 : sizeOf(s.memory)),
    current, deleting: s.deleting === true,
  };
}

/** The snapshots, each disk's chain walked (under the policy) to tell which are in it. */
export async function listSnapshots(rec: VmRecord): Promise<SnapshotInfo[]> {
  const chains = new Map<string, string[]>();
  for (const d of disksOf(rec).filter(writable)) {
    const ch = await walk(rec, d, `disks[${d.name}]`).catch(() => null);
    if (ch !== null) chains.set(d.name, ch.layers.map((l) => l.path));
  }
  return state(rec).list.map((s) => info(rec, s, chains));
}

/**
 * Writes a new qcow2 overlay over `top` as `path` in `dir` (the directory of both, opened and
 * checked: vm/snapshot-dir): created O_EXCL|O_NOFOLLOW beneath the directory's fd (never over a
 * file, never through a link), 0600, fchown'd to the owner of the top layer as found in that
 * directory by its identity (refused if it is another file), fsync'd with the directory.
 * Returns the new file's identity.
 */
export function createOverlayFile(dir: DiskDir, path: string, top: ChainLayer): FileId {
  if (dirname(path) !== dir.path || dirname(top.path) !== dir.path) throw new RangeError(`${path} and ${top.path} are not in ${dir.path}`);
  const owner = dir.anchor(basename(top.path), top);
  const bytes = qcow2Overlay({ virtualSize: Math.ceil((top.virtualSize ?? top.size) / 512) * 512, backing: basename(top.path), backingFormat: top.format as ImageFormat });
  const fd = dir.create(basename(path));
  let id: FileId;
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
    if (process.getuid?.() === 0) fchownSync(fd, owner.uid, owner.gid);
    fsyncSync(fd);
    const st = fstatSync(fd);
    id = { dev: st.dev, ino: st.ino };
  } finally {
    closeSync(fd);
  }
  fsyncSync(dir.fd);
  return id;
}

/** Opens (and anchors) the directory of each layer in `tops`, one per directory; closes what it opened when one is refused. */
export function openDirs(rec: VmRecord, tops: ReadonlyArray<{ path: string; dev: number; ino: number }>, known?: Record<string, FileId>): Map<string, DiskDir> {
  const dirs = new Map<string, DiskDir>();
  try {
    for (const t of tops) if (!dirs.has(dirname(t.path))) dirs.set(dirname(t.path), DiskDir.of(rec.name, t.path, t, known?.[dirname(t.path)]));
  } catch (err) {
    for (const x of dirs.values()) x.close();
    throw err;
  }
  return dirs;
}

const idsOf = (dirs: Map<string, DiskDir>): Record<string, FileId> => Object.fromEntries([...dirs].map(([p, x]) => [p, x.id]));
const closeAll = (dirs: Map<string, DiskDir>): void => { for (const x of dirs.values()) x.close(); };

/** Removes files an operation made, only from the directories it recorded; refuses (the op is kept) if one is another directory now. */
function removeOpFiles(rec: VmRecord, files: readonly string[], dirs: SnapshotOp['dirs']): void {
  // An op recorded before directories were (no `dirs`) leaves its files rather than remove them by name.
  const refused = removeFiles(rec.name, files, dirs);
  if (refused.length > 0 && dirs !== undefined) {
    throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name}: ${refused.join(', ')} were not removed: the directory is not the one they were made in, or the file was replaced`, {
      context: { vm: rec.name, files: refused }, suggestions: ['put the disk\'s directory back where it was, then run the snapshot command again'],
    });
  }
}

/** The layers QEMU holds for `disk` in the current run: recorded by a snapshot of this run, else as start planned them (plan/disks node names, fdsets by opaque). */
export async function liveChain(rec: VmRecord, q: QmpConn, disk: Disk): Promise<LiveLayer[]> {
  const live = state(rec).live;
  if (live !== undefined && live.run === rec.run?.startedAt && live.disks[disk.name] !== undefined) return live.disks[disk.name]!;
  const chain = await walk(rec, disk, `disks[${disk.name}]`);
  const sets = (await q.execute('query-fdsets')) as Array<{ 'fdset-id': number; fds: Array<{ opaque?: string }> }>;
  return chain.layers.map((l, j) => {
    const opaque = `disk-${disk.name}-${j}`;
    const set = sets.find((s) => s.fds.some((f) => f.opaque === opaque));
    if (set === undefined) throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name}: QEMU holds no fdset for layer ${j} of disk ${disk.name} (${l.path})`, { context: { vm: rec.name, disk: disk.name, layer: j } });
    return { path: l.path, format: l.format, node: `${disk.name}-${j}-fmt`, file: `${disk.name}-${j}-file`, fdset: set['fdset-id'] };
  });
}

/** Whether QEMU has `node` with a backing layer (a blockdev-snapshot onto it happened). */
async function hasBacking(q: QmpConn, node: string): Promise<boolean> {
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; backing_file_depth?: number; image?: { 'backing-image'?: unknown } }>;
  const n = nodes.find((x) => x['node-name'] === node);
  return n !== undefined && ((n.backing_file_depth ?? 0) > 0 || n.image?.['backing-image'] !== undefined);
}

/**
 * Settles what a killed snapshot command left: a create whose transaction QEMU made is finished
 * (the guest already writes into the overlays; undoing it would lose those writes); anything
 * else is undone: the begun steps' inverses (errors ignored: a step may never have been made),
 * the files it created removed. A snapshot left `deleting` is merged again by the caller.
 */
export async function recover(d: TeardownDeps, rec: VmRecord, q: QmpConn | null): Promise<VmRecord> {
  const st = state(rec);
  const op = st.op;
  if (op === undefined) return rec;
  const sameRun = q !== null && op.run === (rec.run?.startedAt ?? '') && op.run !== '';
  // vCPUs a --memory create stopped run again, whichever way it is settled.
  if (sameRun && (op as SnapshotOp & { pending?: Pending }).pending?.resume === true
    && ((await q.execute('query-status').catch(() => ({ status: '' }))) as { status: string }).status !== 'running') await q.execute('cont').catch(() => undefined);
  if (op.kind === 'create' && sameRun && op.check !== undefined && (await hasBacking(q, op.check.node).catch(() => false))) return finishCreate(d, rec, op);
  if (sameRun) for (const u of planDiskDetach(op.steps)) await q.execute(u.command, u.args, 5000).catch(() => undefined);
  removeOpFiles(rec, op.files, op.dirs);
  const { op: _op, ...rest } = st;
  return save(d, rec, { ...rest, owned: st.owned.filter((f) => !op.files.includes(f)) });
}

/**
 * The record of a create whose transaction QEMU made (`op.pending`, written before the
 * transaction). `memory`: the state file, once complete; a recovered create keeps none (the
 * file may be cut short) and resumes vCPUs the create stopped.
 */
async function finishCreate(d: TeardownDeps, rec: VmRecord, op: SnapshotOp, memory?: string): Promise<VmRecord> {
  const p = (op as SnapshotOp & { pending?: Pending }).pending;
  if (p === undefined) throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name}: snapshot ${op.snap} was made by QEMU but its record is missing`, { context: { vm: rec.name, snapshot: op.snap } });
  removeOpFiles(rec, op.files.filter((f) => f !== memory && !p.entry.disks.some((x) => x.overlay === f)), op.dirs);
  const st = state(rec);
  const { op: _op, ...rest } = st;
  const entry = memory === undefined ? p.entry : { ...p.entry, memory };
  return save(d, rec, { ...rest, list: [...st.list, entry], ...(p.live === undefined ? {} : { live: p.live }) }, { spec: p.spec, ...(p.claims === undefined ? {} : { disks: p.claims }) });
}

/** What the record becomes once a create's transaction is made (kept in the op so a killed create can be finished). */
interface Pending {
  entry: SnapshotEntry;
  spec: Record<string, unknown>;
  live?: SnapshotState['live'];
  claims?: VmRecord['disks'];
  /** The create stopped running vCPUs for --memory: a recovery runs them again. */
  resume?: boolean;
}

export interface CreateRequest { snap?: string; memory?: boolean }

function checkName(rec: VmRecord, snap: string): void {
  if (!SNAP_NAME.test(snap)) throw new VmError('VM_BAD_NAME', `snapshot name ${JSON.stringify(snap)} must match [a-z0-9][a-z0-9._-]{0,62}`, { context: { vm: rec.name, snapshot: snap } });
  if (state(rec).list.some((s) => s.name === snap)) {
    throw new VmError('VM_SNAPSHOT_EXISTS', `VM ${rec.name} already has a snapshot ${snap}`, { context: { vm: rec.name, snapshot: snap }, suggestions: ['choose another name, or delete it first: warden snapshot delete ' + rec.name + ' ' + snap] });
  }
}

function defaultName(rec: VmRecord): string {
  const names = new Set(state(rec).list.map((s) => s.name));
  let k = state(rec).list.length + 1;
  while (names.has(`snap${k}`)) k++;
  return `snap${k}`;
}

/**
 * Takes a snapshot: for a running VM (`q` set) the overlays go live in one transaction (with
 * `memory`, while the vCPUs are stopped, followed by the RAM state into a file by fd); for a
 * stopped VM only the files and the record change.
 */
export async function createSnapshot(d: TeardownDeps, rec: VmRecord, q: QmpConn | null, req: CreateRequest): Promise<{ record: VmRecord; result: SnapshotResult }> {
  rec = await recover(d, rec, q);
  const snap = req.snap ?? defaultName(rec);
  checkName(rec, snap);
  if (req.memory === true && q === null) throw new VmError('VM_INVALID_STATE', `VM ${rec.name} is not running: a snapshot with --memory needs its RAM`, { context: { vm: rec.name, phase: rec.phase }, suggestions: ['leave out --memory for a disk-only snapshot of a stopped VM'] });
  const disks = disksOf(rec).filter(writable);
  if (disks.length === 0) throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name} has no writable disk to snapshot`, { context: { vm: rec.name } });
  // A disk hot-plugged into this run: its detach undoes the attach's own nodes, which an overlay would hold on to.
  const plugged = q === null ? [] : disks.filter((x) => (rec.hotplug ?? []).some((e) => e.kind === undefined && e.name === x.name && e.run === rec.run?.startedAt));
  if (plugged.length > 0) {
    throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name}: disk ${plugged.map((x) => x.name).join(', ')} was hot-plugged into this run; snapshots of hot-plugged disks are not supported while that run lasts`, {
      context: { vm: rec.name, disks: plugged.map((x) => x.name) }, suggestions: [`restart the VM (the disk is in its spec, so it comes back as a boot disk), or detach it first: warden disk detach ${rec.name} ${plugged[0]!.name}`],
    });
  }
  const chains = new Map<string, ImageChain>();
  for (const x of disks) chains.set(x.name, await walk(rec, x, `disks[${x.name}]`));
  const overlays = disks.map((x) => join(dirname(chains.get(x.name)!.layers[0]!.path), `${rec.name}-${x.name}.${snap}.qcow2`));
  const run = q === null ? '' : rec.run?.startedAt ?? '';
  const st0 = state(rec);
  let seq = st0.live?.run === run ? st0.live.seq : 0;
  const lives = new Map<string, LiveLayer[]>();
  if (q !== null) for (const x of disks) lives.set(x.name, await liveChain(rec, q, x));
  const plan = q === null ? null : planSnapshotCreate(disks.map((x, i) => ({ disk: x, top: lives.get(x.name)![0]!, path: overlays[i]!, tag: `s${seq + 1 + i}` })),
    ((await q.execute('query-fdsets')) as Array<{ 'fdset-id': number }>).map((f) => f['fdset-id']));
  seq += disks.length;
  // Each top's directory, opened once and anchored by the top the walk saw (and, while the VM runs, the top its run claims): every file is made in it by fd, never by name.
  const dirs = openDirs(rec, disks.map((x) => { const top = chains.get(x.name)!.layers[0]!; return (q === null ? undefined : rec.disks?.find((c) => c.path === top.path)) ?? top; }));
  const entry: SnapshotEntry = { name: snap, createdAt: d.now(), vmPhase: rec.phase, disks: disks.map((x, i) => {
    const ch = chains.get(x.name)!;
    return { disk: x.name, base: ch.layers[0]!.path, baseFormat: ch.layers[0]!.format, chain: ch.layers.map((l) => l.path), overlay: overlays[i]! };
  }), dirs: idsOf(dirs) };
  const memFile = req.memory === true ? join(dirname(overlays[0]!), `${rec.name}.${snap}.vmstate`) : undefined;
  const spec = { ...rec.spec, disks: disksOf(rec).map((x) => { const i = disks.indexOf(x); return i < 0 ? x : { ...x, image: overlays[i]!, format: 'qcow2' }; }) };
  const live = plan === null ? undefined : { run, seq, disks: Object.fromEntries(disks.map((x) => [x.name, [plan.layers[x.name]!, ...lives.get(x.name)!]])) };
  // Recorded before any file or step: the files to remove, the steps to undo, and the record once the transaction is made.
  const op: SnapshotOp & { pending: Pending } = { kind: 'create', snap, run, files: [...overlays, ...(memFile === undefined ? [] : [memFile])], steps: plan?.steps ?? [],
    ...(plan === null ? {} : { check: { disk: disks[0]!.name, node: plan.layers[disks[0]!.name]!.node } }),
    pending: { entry, spec, ...(live === undefined ? {} : { live }) }, dirs: idsOf(dirs) };
  try { rec = await save(d, rec, { ...st0, owned: [...st0.owned, ...overlays], op }); } catch (err) { closeAll(dirs); throw err; }
  const fds = new OpenFds();
  const made: string[] = [];
  let migration: MigrationFigures | undefined;
  try {
    const ids = disks.map((x, i) => createOverlayFile(dirs.get(dirname(overlays[i]!))!, overlays[i]!, chains.get(x.name)!.layers[0]!));
    const probed: ImageChain[] = [];
    for (const [i, x] of disks.entries()) {
      const ch = await walk(rec, { ...x, image: overlays[i]!, format: 'qcow2' }, `snapshot ${snap} of disk ${x.name}`);
      const was = chains.get(x.name)!.layers[0]!;
      if (ch.layers[0]?.dev !== ids[i]!.dev || ch.layers[0]?.ino !== ids[i]!.ino || ch.layers[1]?.dev !== was.dev || ch.layers[1]?.ino !== was.ino) throw new VmError('VM_SNAPSHOT_FAILED', `the new overlay ${overlays[i]} does not lead to ${was.path}`, { context: { vm: rec.name, overlay: overlays[i] } });
      probed.push(ch);
    }
    if (q !== null && plan !== null) {
      await fds.openAll(plan.fds.map((f) => ({ kind: 'file' as const, name: f.name, path: f.path, flags: f.flags, target: 0, from: `snapshot ${snap}` })), rec.name, chainFiles(probed));
      const before = ((await q.execute('query-status')) as { status: string }).status;
      op.pending.claims = claimsAfter(rec, chains, probed);
      op.pending.resume = memFile !== undefined && before === 'running';
      rec = await save(d, rec, { ...state(rec), op });
      if (memFile !== undefined) { await q.execute('stop'); made.push('stop'); }
      for (const s of plan.steps) {
        await q.execute(s.command, s.args, 10_000, s.fd === undefined ? undefined : [fds.byName.get(s.fd)!]);
        made.push(s.command);
      }
      await q.execute(plan.transaction.command, plan.transaction.args, 30_000);
      made.push('transaction');
      if (memFile !== undefined) migration = await saveMemory(q, dirs.get(dirname(memFile))!.via(basename(memFile)), rec, spec, before);
    }
  } catch (cause) {
    if (q !== null && made.includes('stop') && !made.includes('transaction')) await q.execute('cont').catch(() => undefined);
    if (!made.includes('transaction')) {
      rec = await recover(d, rec, q);
      throw new VmError('VM_SNAPSHOT_FAILED', `taking snapshot ${snap} of VM ${rec.name} failed${made.length > 0 ? ` after ${made.join(', ')}` : ''}; what was made was undone`, { context: { vm: rec.name, snapshot: snap, steps: made }, cause });
    }
    // The disks switched; only the memory file failed: the snapshot stays, disk-only (finishCreate removes the file).
    rec = await finishCreate(d, rec, op);
    throw new VmError('VM_SNAPSHOT_FAILED', `snapshot ${snap} of VM ${rec.name} was taken of the disks, but saving its memory failed; it is kept as a disk-only snapshot`, { context: { vm: rec.name, snapshot: snap }, cause });
  } finally {
    await fds.close(false); // QEMU holds its own copies
    closeAll(dirs);
  }
  rec = await finishCreate(d, rec, op, memFile);
  return { record: rec, result: { vm: rec.name, snapshot: info(rec, findSnapshot(rec, snap)), steps: made, ...(migration === undefined ? {} : { migration }) } };
}

/** The one-writer claims after the switch: each old top now read-only, each overlay written. */
function claimsAfter(rec: VmRecord, chains: Map<string, ImageChain>, probed: ImageChain[]): VmRecord['disks'] {
  const tops = [...chains.values()].map((c) => c.layers[0]!);
  const old = (rec.disks ?? []).map((c) => (tops.some((t) => t.dev === c.dev && t.ino === c.ino) ? { ...c, writable: false } : c));
  return [...old, ...probed.map((c) => ({ path: c.layers[0]!.path, dev: c.layers[0]!.dev, ino: c.layers[0]!.ino, writable: true }))];
}

/** The vCPUs are stopped and the disks switched: the RAM and device state into a new save file by fd, then the vCPUs run again if they ran. */
async function saveMemory(q: QmpConn, file: string, rec: VmRecord, spec: Record<string, unknown>, before: string): Promise<MigrationFigures> {
  const fd = createSaveFile(file, { name: rec.name, spec, savedAt: new Date().toISOString() });
  try {
    const f = await saveToFd(q, fd, rec.name);
    fsyncSync(fd);
    return f;
  } finally {
    closeSync(fd);
    // After a completed migration QEMU is "postmigrate"; cont reactivates the block nodes and runs the guest.
    if (before === 'running') await q.execute('cont').catch(() => undefined);
  }
}

/**
 * Each frozen layer of `s` (walked under the policy) and its directory, opened: the one the
 * snapshot's files were made in (recorded), holding the layer the walk saw. Refused (IMAGE_CHANGED),
 * with nothing opened, if a directory on the way was swapped since.
 */
async function revertDirs(rec: VmRecord, s: SnapshotEntry): Promise<{ bases: ChainLayer[]; dirs: Map<string, DiskDir> }> {
  const bases: ChainLayer[] = [];
  for (const e of s.disks) {
    const disk = disksOf(rec).find((x) => x.name === e.disk)!;
    bases.push((await walk(rec, { ...disk, image: e.base, format: e.baseFormat as Disk['format'] }, `snapshot ${s.name} of disk ${e.disk}`)).layers[0]!);
  }
  return { bases, dirs: openDirs(rec, bases, s.dirs) };
}

/** The checks of a revert to `snap`, made before the VM is stopped for it (a refusal leaves it running, its record as it was). */
export async function checkRevert(rec: VmRecord, snap: string): Promise<void> {
  closeAll((await revertDirs(rec, findSnapshot(rec, snap))).dirs);
}

/**
 * Resets the (stopped) VM's disks to snapshot `snap`: a fresh overlay over each frozen layer, so
 * the snapshot can be reverted to again. The layers of the abandoned state that no snapshot
 * builds on are removed (only files the manager made). Returns the record; the caller starts it.
 */
export async function revertDisks(d: TeardownDeps, rec: VmRecord, snap: string): Promise<VmRecord> {
  rec = await recover(d, rec, null);
  const st = state(rec);
  const s = st.list.find((x) => x.name === snap);
  if (s === undefined) throw notFound(rec, snap);
  const { bases, dirs } = await revertDirs(rec, s);
  try {
    const paths = s.disks.map((e) => {
      const dir = dirs.get(dirname(e.base))!;
      for (let k = 1; ; k++) {
        const name = `${rec.name}-${e.disk}.${snap}.r${k}.qcow2`;
        if (dir.stat(name) === null) return join(dirname(e.base), name);
      }
    });
    const op: SnapshotOp = { kind: 'revert', snap, run: '', files: paths, steps: [], dirs: idsOf(dirs) };
    rec = await save(d, rec, { ...st, owned: [...st.owned, ...paths], op });
    try {
      for (const [i, e] of s.disks.entries()) {
        const disk = disksOf(rec).find((x) => x.name === e.disk)!;
        const id = createOverlayFile(dirs.get(dirname(e.base))!, paths[i]!, bases[i]!);
        const ch = await walk(rec, { ...disk, image: paths[i]!, format: 'qcow2' }, `snapshot ${snap} of disk ${e.disk}`);
        if (ch.layers[0]?.dev !== id.dev || ch.layers[0]?.ino !== id.ino || ch.layers[1]?.dev !== bases[i]!.dev || ch.layers[1]?.ino !== bases[i]!.ino) {
          throw new VmError('VM_SNAPSHOT_FAILED', `the new overlay ${paths[i]} does not lead to ${e.base}`, { context: { vm: rec.name, overlay: paths[i] } });
        }
      }
    } catch (cause) {
      rec = await recover(d, rec, null);
      throw new VmError('VM_SNAPSHOT_FAILED', `reverting VM ${rec.name} to snapshot ${snap} failed; its disks are as they were`, { context: { vm: rec.name, snapshot: snap }, cause });
    }
    // The abandoned layers: from each old top down to the first layer a snapshot needs.
    const needed = new Set(st.list.flatMap((x) => x.disks.flatMap((y) => y.chain)));
    const gone: ChainLayer[] = [];
    for (const e of s.disks) {
      const disk = disksOf(rec).find((x) => x.name === e.disk)!;
      for (const l of (await walk(rec, disk, `disks[${e.disk}]`).catch(() => ({ layers: [] as ChainLayer[] }))).layers) {
        if (needed.has(l.path) || !st.owned.includes(l.path)) break;
        gone.push(l);
      }
    }
    const spec = { ...rec.spec, disks: disksOf(rec).map((x) => { const i = s.disks.findIndex((e) => e.disk === x.name); return i < 0 ? x : { ...x, image: paths[i]!, format: 'qcow2' }; }) };
    const { op: _op, live: _live, ...rest } = state(rec);
    const files = gone.map((l) => l.path);
    rec = await save(d, rec, { ...rest, owned: rest.owned.filter((f) => !files.includes(f)) }, { spec });
    // Removed only from the directories the snapshots recorded, or where the walk's layer still is that file; others are left.
    removeFiles(rec.name, files, Object.assign({}, ...st.list.map((x) => x.dirs ?? {}), idsOf(dirs)) as Record<string, FileId>, new Map(gone.map((l) => [l.path, l])));
    return rec;
  } finally {
    closeAll(dirs);
  }
}

/** The snapshot's entry (for revert: memory file and phase). */
export function findSnapshot(rec: VmRecord, snap: string): SnapshotEntry {
  const s = state(rec).list.find((x) => x.name === snap);
  if (s === undefined) throw notFound(rec, snap);
  return s;
}
