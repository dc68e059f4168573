/**
 * @module plan/snapshot: external disk snapshots of a running VM as pure functions of its live
 * block layers: the QMP steps that put a manager-made overlay on top of each disk (add-fd,
 * blockdev-add with `backing: null`, then one `transaction` of blockdev-snapshot so all disks
 * switch at the same instant), and the steps that merge a layer back into the one below it
 * (the base reopened read-write on a read-write fd of its own fdset, then block-commit).
 */
import type { Disk } from '../spec/index.js';
import type { HotplugFd, HotplugStep, QmpCall } from './hotplug.js';

/** One layer of a disk as the running QEMU holds it: its file, format node, file node and fdset. */
export interface LiveLayer {
  path: string;
  format: string;
  node: string;
  file: string;
  fdset: number;
}

/** What one disk's new overlay is: the disk, the layer it goes on, where the manager created it, a fresh node tag. */
export interface OverlayTarget {
  disk: Disk;
  top: LiveLayer;
  path: string;
  /** Unique among the VM's nodes for this run (`s3`): nodes `${disk}-${tag}-fmt`/`-file`. */
  tag: string;
}

export interface SnapshotCreatePlan {
  fds: HotplugFd[];
  /** add-fd and blockdev-add per disk, each with its inverse (plan/hotplug planDiskDetach undoes a prefix). */
  steps: HotplugStep[];
  /** One transaction: every disk's overlay becomes its active layer at once. */
  transaction: QmpCall;
  /** The new top layer of each disk. */
  layers: Record<string, LiveLayer>;
}

/** The node options QEMU reopens with (cache as at boot: plan/disks). */
function cacheOf(d: Disk): Record<string, boolean> {
  return { direct: d.cache === 'none', 'no-flush': d.cache === 'unsafe' };
}

/** Overlays for `targets`, their fdsets numbered after every fdset QEMU holds (`fdsets`). */
export function planSnapshotCreate(targets: readonly OverlayTarget[], fdsets: readonly number[]): SnapshotCreatePlan {
  let next = Math.max(0, ...fdsets) + 1;
  const fds: HotplugFd[] = [];
  const steps: HotplugStep[] = [];
  const layers: Record<string, LiveLayer> = {};
  for (const t of targets) {
    const fdset = next++;
    const name = `disk-${t.disk.name}-${t.tag}`;
    const node = `${t.disk.name}-${t.tag}-fmt`;
    const file = `${t.disk.name}-${t.tag}-file`;
    const flags: HotplugFd['flags'] = t.disk.cache === 'none' ? ['O_RDWR', 'O_DIRECT'] : ['O_RDWR'];
    fds.push({ name, path: t.path, flags, fdset });
    const cache = cacheOf(t.disk);
    const discard = t.disk.discard ? { discard: 'unmap' } : {};
    steps.push(
      { command: 'add-fd', args: { 'fdset-id': fdset, opaque: name }, fd: name, undo: { command: 'remove-fd', args: { 'fdset-id': fdset } } },
      { command: 'blockdev-add', args: { driver: 'file', filename: `/dev/fdset/${fdset}`, 'node-name': file, 'read-only': false, cache, ...discard }, undo: { command: 'blockdev-del', args: { 'node-name': file } } },
      // backing: null: QEMU opens nothing the header names; blockdev-snapshot attaches the old top as backing.
      { command: 'blockdev-add', args: { driver: 'qcow2', 'node-name': node, file, backing: null, 'read-only': false, cache, ...discard }, undo: { command: 'blockdev-del', args: { 'node-name': node } } },
    );
    layers[t.disk.name] = { path: t.path, format: 'qcow2', node, file, fdset };
  }
  const actions = targets.map((t) => ({ type: 'blockdev-snapshot', data: { node: t.top.node, overlay: layers[t.disk.name]!.node } }));
  return { fds, steps, transaction: { command: 'transaction', args: { actions } }, layers };
}

/** Merging `overlay` into `base` (the layer right below it) while the VM runs. */
export interface MergeInput {
  disk: Disk;
  /** The disk's layers top first, as QEMU holds them. */
  chain: readonly LiveLayer[];
  /** Index in `chain` of the base (the snapshot's frozen layer); the overlay is `chain[base - 1]`. */
  base: number;
  /** The base's name as the layer above the overlay must record it (relative to that layer's directory). */
  backingName: string;
  jobId: string;
  /**
   * Whether QEMU holds the base's file read-only (a backing layer since start). Only then does
   * its fdset get a read-write fd: an extra open file of a file QEMU already writes makes the
   * reopen fail on QEMU's own image lock ("Failed to get write lock").
   */
  baseReadOnly: boolean;
}

export interface MergePlan {
  /** A read-write fd of the base file, added to the base's own fdset (QEMU reopens /dev/fdset/N O_RDWR); null when QEMU writes it already. */
  fd: HotplugFd | null;
  /** add-fd (when `fd`), then blockdev-reopen of the base read-write. */
  prepare: HotplugStep[];
  /** The commit job: active (the overlay is the top: ends with job-complete once READY) or not. */
  commit: QmpCall;
  active: boolean;
  /** After the job: the overlay's nodes and fdset go (QEMU then holds no fd of its file). */
  release: QmpCall[];
}

const COW = new Set(['qcow2', 'qcow', 'qed', 'vmdk']);

export function planSnapshotMerge(m: MergeInput): MergePlan {
  const base = m.chain[m.base]!;
  const overlay = m.chain[m.base - 1]!;
  const below = m.chain[m.base + 1];
  const active = m.base === 1;
  const cache = cacheOf(m.disk);
  // As the base ends up: the active layer (writable, discard as a top has it) or a backing layer again.
  const discard = active && m.disk.discard ? { discard: 'unmap' } : {};
  const fmt: Record<string, unknown> = { driver: base.format, 'node-name': base.node, file: base.file, 'read-only': false, cache, ...discard };
  if (COW.has(base.format)) fmt['backing'] = below?.node ?? null;
  const fd: HotplugFd | null = m.baseReadOnly ? { name: `${base.node}-rw`, path: base.path, flags: m.disk.cache === 'none' ? ['O_RDWR', 'O_DIRECT'] : ['O_RDWR'], fdset: base.fdset } : null;
  const prepare: HotplugStep[] = [
    ...(fd === null ? [] : [{ command: 'add-fd', args: { 'fdset-id': base.fdset, opaque: fd.name }, fd: fd.name, undo: null }]),
    { command: 'blockdev-reopen', args: { options: [
      { driver: 'file', 'node-name': base.file, filename: `/dev/fdset/${base.fdset}`, 'read-only': false, cache, ...discard }, fmt,
    ] }, undo: null },
  ];
  const commit: QmpCall = { command: 'block-commit', args: {
    'job-id': m.jobId, device: m.chain[0]!.node, 'base-node': base.node, 'auto-finalize': true, 'auto-dismiss': false,
    // A commit below the top rewrites the header of the layer above: it must name the base as the next start will find it.
    ...(active ? {} : { 'top-node': overlay.node, 'backing-file': m.backingName }),
  } };
  const release: QmpCall[] = [
    { command: 'blockdev-del', args: { 'node-name': overlay.node } },
    { command: 'blockdev-del', args: { 'node-name': overlay.file } },
    { command: 'remove-fd', args: { 'fdset-id': overlay.fdset } },
  ];
  return { fd, prepare, commit, active, release };
}
