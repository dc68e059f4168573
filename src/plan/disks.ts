/**
 * @module plan/disks: each disk's chain as explicit -blockdev nodes (a file node and a
 * format node per layer, bottom first so every `backing` names an existing node), its fds
 * with exact access modes, its controller and its guest device.
 */
import type { ChainLayer } from '../image/index.js';
import { throttleLimits, type Disk, type Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts, OpenFlag } from './types.js';

/** Formats whose blockdev options take `backing` (QAPI BlockdevOptionsGenericCOWFormat and qcow2). */
const COW_FORMATS = new Set(['qcow2', 'qcow', 'qed', 'vmdk']);

export function diskBus(d: Disk): 'virtio' | 'scsi' | 'sata' {
  return d.bus ?? (d.media === 'cdrom' ? 'sata' : 'virtio');
}

export interface DiskCtx { machineKind: 'q35' | 'pc' }

/** Controllers first (deterministic slots), then each disk in spec order. */
export function planDisks(spec: Spec, facts: Facts, b: PlanBuilder, ctx: DiskCtx): void {
  const buses = new Set(spec.disks.map(diskBus));
  if (buses.has('scsi') || spec.scsiController === true) b.device(buses.has('scsi') ? 'disks' : 'scsiController', { driver: 'virtio-scsi-pci', id: SCSI_CONTROLLER, ...b.pci('disks') });
  if (buses.has('sata') && ctx.machineKind === 'pc') b.device('disks', { driver: 'ich9-ahci', id: 'sata0', ...b.pci('disks') });
  const sataBus = ctx.machineKind === 'q35' ? 'ide' : 'sata0';
  let scsiLun = 0;
  let sataPort = 0;
  spec.disks.forEach((d, i) => {
    const top = planChain(d, i, facts, b);
    if (top === null) return;
    const from = `disks[${i}]`;
    const common = deviceCommon(d, top);
    const bus = diskBus(d);
    if (bus === 'virtio') virtioDisk(d, from, top, b);
    else if (bus === 'scsi') scsiDisk(d, from, top, scsiLun++, b);
    else b.device(from, { driver: d.media === 'cdrom' ? 'ide-cd' : 'ide-hd', bus: `${sataBus}.${sataPort++}`, ...common });
  });
}

function deviceCommon(d: Disk, top: string): Record<string, unknown> {
  const common: Record<string, unknown> = { drive: top, id: `disk-${d.name}` };
  if (d.bootIndex !== undefined) common['bootindex'] = d.bootIndex;
  if (d.serial !== undefined && d.media === 'disk') common['serial'] = d.serial;
  return common;
}

/** The virtio-scsi controller's id; its one bus is `scsi0.0`. */
export const SCSI_CONTROLLER = 'scsi0';

/** A scsi disk (or cdrom) at `lun` of target 0 on the controller: the same device at boot and at hot-plug. */
export function scsiDisk(d: Disk, from: string, top: string, lun: number, b: PlanBuilder): void {
  b.device(from, { driver: d.media === 'cdrom' ? 'scsi-cd' : 'scsi-hd', bus: `${SCSI_CONTROLLER}.0`, channel: 0, 'scsi-id': 0, lun, ...deviceCommon(d, top) });
}

/** A virtio-blk disk on the next PCI slot: the same device at boot (-device) and at hot-plug (device_add). */
export function virtioDisk(d: Disk, from: string, top: string, b: PlanBuilder): void {
  b.device(from, { driver: 'virtio-blk-pci', ...b.pci(from), ...deviceCommon(d, top) });
}

/**
 * Checks the chain facts; emits the nodes bottom first; returns the top format node's name.
 * Boot and hot-plug both call it, so a disk's nodes and fds are planned one way.
 */
export function planChain(d: Disk, i: number, facts: Facts, b: PlanBuilder): string | null {
  const from = `disks[${i}]`;
  const chain = facts.chains[d.name];
  if (chain === undefined || chain.layers.length === 0) {
    b.issue({ code: 'PLAN_MISSING_FACT', from: `${from}.image`, message: `no backing-chain facts for disk ${d.name} (${d.image})` });
    return null;
  }
  if (!checkLayers(d, from, chain.layers, b)) return null;
  const writable = d.media === 'disk' && !d.readOnly;
  let below: string | null = null;
  for (let j = chain.layers.length - 1; j >= 0; j--) {
    below = planLayer(d, from, j, chain.layers[j]!, j === 0 && writable, below, b);
  }
  return d.limits === undefined ? below : planThrottle(d, from, below!, writable, b);
}

/** The throttle group of a disk with limits (one group per disk, changed live by qom-set on it). */
export function throttleGroupId(disk: string): string {
  return `tg-${disk}`;
}

/** A disk's I/O limits: its own throttle group and a throttle filter node above the chain's top; returns the filter's name. */
function planThrottle(d: Disk, from: string, top: string, writable: boolean, b: PlanBuilder): string {
  b.qapiArg(`${from}.limits`, '-object', 'object-add', { 'qom-type': 'throttle-group', id: throttleGroupId(d.name), limits: throttleLimits(d.limits!) });
  const node = `${d.name}-throttle`;
  b.qapiArg(`${from}.limits`, '-blockdev', 'blockdev-add', { driver: 'throttle', 'node-name': node, 'throttle-group': throttleGroupId(d.name), file: top, 'read-only': !writable });
  return node;
}

function checkLayers(d: Disk, from: string, layers: readonly ChainLayer[], b: PlanBuilder): boolean {
  let ok = true;
  if (layers[0]!.format !== d.format) {
    b.issue({ code: 'PLAN_FORMAT_MISMATCH', from: `${from}.format`, message: `disk ${d.name} is declared ${d.format}, but the prober read its top layer as ${layers[0]!.format}` });
    ok = false;
  }
  layers.forEach((l, j) => {
    const where = j === 0 ? `${from}.image` : `${from}.image (backing layer ${j}: ${l.path})`;
    // The prober's facts are re-checked where a slip would make QEMU open the wrong thing.
    const below = layers[j + 1];
    if ((below === undefined) !== (l.backingFilename === null)) { b.issue({ code: 'PLAN_BAD_FACT', from: where, message: `layer ${l.path}: the chain facts disagree with its backing name ${JSON.stringify(l.backingFilename)}` }); ok = false; }
    if (below !== undefined && l.backingFormat !== null && l.backingFormat !== below.format) { b.issue({ code: 'PLAN_FORMAT_MISMATCH', from: where, message: `layer ${l.path} records backing format ${l.backingFormat}, but its backing layer ${below.path} was read as ${below.format}` }); ok = false; }
    if (l.encrypted) { b.issue({ code: 'PLAN_ENCRYPTED', from: where, message: `layer ${l.path} is encrypted; encrypted images are not supported yet` }); ok = false; }
    if (j < layers.length - 1 && !COW_FORMATS.has(l.format)) { b.issue({ code: 'PLAN_UNSUPPORTED', from: where, message: `layer ${l.path} (${l.format}) has a backing file, but QEMU's ${l.format} driver takes none` }); ok = false; }
    if (l.dataFilePath !== null && l.format !== 'qcow2') { b.issue({ code: 'PLAN_UNSUPPORTED', from: where, message: `layer ${l.path} names a data file, which only qcow2 supports` }); ok = false; }
  });
  return ok;
}

/**
 * One file in two places is only safe when every use is read-only: a writable layer that
 * is also another disk's layer (or the same disk twice) would be corrupted. Same file =
 * same (dev, ino), whatever its names.
 */
export function checkSharedFiles(spec: Spec, facts: Facts, b: PlanBuilder): void {
  const uses = new Map<string, Array<{ where: string; writable: boolean; path: string }>>();
  spec.disks.forEach((d, i) => {
    const layers = facts.chains[d.name]?.layers ?? [];
    layers.forEach((l, j) => {
      const key = `${l.dev}:${l.ino}`;
      const list = uses.get(key) ?? [];
      list.push({ where: j === 0 ? `disks[${i}].image` : `disks[${i}].image (backing layer ${j})`, writable: j === 0 && d.media === 'disk' && !d.readOnly, path: l.path });
      uses.set(key, list);
    });
  });
  for (const list of uses.values()) {
    if (list.length < 2 || !list.some((u) => u.writable)) continue;
    const w = list.find((u) => u.writable)!;
    const others = list.filter((u) => u !== w).map((u) => `${u.where} (${u.path})`).join(', ');
    b.issue({ code: 'PLAN_SHARED_IMAGE', from: w.where, message: `${w.path} is opened read-write here and also used by ${others}`, suggestion: 'give each disk its own overlay (qemu-img create -f qcow2 -b BASE -F FMT OVERLAY), or mark the disk readOnly' });
  }
}

function cacheOf(d: Disk): Record<string, boolean> {
  return { direct: d.cache === 'none', 'no-flush': d.cache === 'unsafe' };
}

function flagsOf(d: Disk, writable: boolean): OpenFlag[] {
  const flags: OpenFlag[] = [writable ? 'O_RDWR' : 'O_RDONLY'];
  if (d.cache === 'none') flags.push('O_DIRECT');
  return flags;
}

/** One layer: -add-fd, the file node, an optional data-file node, the format node. */
/** The format node of layer `j` (0: the top) of disk `disk`, as -blockdev names it (a migration mirrors the top one). */
export function layerNode(disk: string, j: number): string {
  return `${disk}-${j}-fmt`;
}

function planLayer(d: Disk, from: string, j: number, l: ChainLayer, writable: boolean, backing: string | null, b: PlanBuilder): string {
  const node = `${d.name}-${j}`;
  const ro = !writable;
  const field = `${from}.image`;
  const fileNode = fileBlockdev(d, from, `${node}-file`, `disk-${d.name}-${j}`, l.path, writable, b);
  const fmt: Record<string, unknown> = { driver: l.format, 'node-name': layerNode(d.name, j), file: fileNode, 'read-only': ro, cache: cacheOf(d) };
  if (writable && d.discard) fmt['discard'] = 'unmap';
  if (COW_FORMATS.has(l.format)) fmt['backing'] = backing;
  if (l.dataFilePath !== null) fmt['data-file'] = fileBlockdev(d, from, `${node}-data`, `disk-${d.name}-${j}-data`, l.dataFilePath, writable, b);
  b.qapiArg(field, '-blockdev', 'blockdev-add', fmt);
  const layerNote = j === 0 ? (d.media === 'cdrom' ? 'cdrom image' : 'top layer') : `backing layer ${j}`;
  b.note('file', l.path, ro ? 'ro' : 'rw', field, `${layerNote} (${l.format}) of disk ${d.name}`);
  if (l.dataFilePath !== null) b.note('file', l.dataFilePath, ro ? 'ro' : 'rw', field, `data file of layer ${j} of disk ${d.name}`);
  return layerNode(d.name, j);
}

function fileBlockdev(d: Disk, from: string, nodeName: string, fdName: string, path: string, writable: boolean, b: PlanBuilder): string {
  const fdset = b.fdsetFile(`${from}.image`, fdName, path, flagsOf(d, writable), fdName);
  const file: Record<string, unknown> = { driver: 'file', filename: fdset, 'node-name': nodeName, 'read-only': !writable, cache: cacheOf(d) };
  if (writable && d.discard) file['discard'] = 'unmap';
  b.qapiArg(`${from}.image`, '-blockdev', 'blockdev-add', file);
  return nodeName;
}
