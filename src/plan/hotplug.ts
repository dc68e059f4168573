/**
 * @module plan/hotplug: a disk hot-plug as a pure function of the running VM's allocations
 * and the disk: the fds to open, the QMP steps (each with its inverse) and the manifest. The
 * nodes, fds and device come from the same code as boot-time -blockdev/-device (plan/disks
 * planChain, virtioDisk), rendered as add-fd, blockdev-add and device_add instead of argv.
 */
import type { ImageChain } from '../image/index.js';
import type { Disk, Spec } from '../spec/index.js';
import { PlanBuilder } from './builder.js';
import { diskBus, planChain, scsiDisk, throttleGroupId, virtioDisk } from './disks.js';
import type { PlanIssue } from './errors.js';
import type { Facts, ManifestEntry, OpenFlag } from './types.js';

/** The id of reserved hot-plug port `k` (q35). */
export function hotplugPortId(k: number): string {
  return `hp${k}`;
}

/** q35: empty pcie-root-ports for hot-plug, after every other device so their slots stay as they were. */
export function planHotplugPorts(spec: Spec, b: PlanBuilder): void {
  if (spec.machine !== 'q35') return;
  for (let k = 0; k < (spec.hotplugSlots ?? 0); k++) {
    b.device('hotplugSlots', { driver: 'pcie-root-port', id: hotplugPortId(k), chassis: k + 1, ...b.pci('hotplugSlots') });
  }
}

/** What the running VM already holds (QEMU's query-fdsets and query-pci, the VM's machine). */
export interface LiveAllocations {
  machine: 'pc' | 'q35';
  fdsets: readonly number[];
  /** Occupied slots on the root PCI bus. */
  pciSlots: readonly number[];
  /** q35: the reserved root ports (hotplugSlots) with nothing behind them. */
  freePorts: readonly string[];
  /** Disk names the VM has (spec and hot-plugged). */
  diskNames: readonly string[];
  /** LUNs in use on the virtio-scsi controller's bus; absent: the VM has no controller. */
  scsiLuns?: readonly number[];
}

export interface QmpCall { command: string; args: Record<string, unknown> }

/** One step; `fd` names the planned fd it carries (add-fd), `undo` takes it back (null: nothing to undo). */
export interface HotplugStep extends QmpCall { fd?: string; undo: QmpCall | null }

export interface HotplugFd { name: string; path: string; flags: OpenFlag[]; fdset: number }

export interface DiskAttachPlan {
  /** The guest device's id (device_del takes it). */
  deviceId: string;
  fds: HotplugFd[];
  steps: HotplugStep[];
  manifest: ManifestEntry[];
  issues: PlanIssue[];
}

const FIRST_SLOT = 2;

/** The lowest free slot on the root bus (pc: slots 2..0x1f are hot-pluggable). */
function freeSlot(used: readonly number[]): number {
  let s = FIRST_SLOT;
  while (used.includes(s)) s++;
  return s;
}

/** The lowest free LUN of target 0 on scsi0.0 (null: all 256 taken, or no controller). */
function freeLun(used: readonly number[] | undefined): number | null {
  if (used === undefined) return null;
  for (let l = 0; l < 256; l++) if (!used.includes(l)) return l;
  return null;
}

/** pc: the next free slot on pci.0; q35: slot 0 behind the first empty reserved root port (null: none). */
export function builderFor(live: LiveAllocations): PlanBuilder | null {
  const fdset = Math.max(0, ...live.fdsets) + 1;
  if (live.machine === 'pc') return new PlanBuilder('pci.0', 0x1f, { fdset, slot: freeSlot(live.pciSlots) });
  const port = live.freePorts[0];
  return port === undefined ? null : new PlanBuilder(port, 0, { fdset, slot: 0 });
}

/**
 * Plans attaching `disk` (its chain probed under the image policy) to a running VM: virtio
 * disks on pc's root bus, or on q35 behind an empty reserved pcie-root-port (pcie.0 takes no
 * hot-plug); scsi disks at the first free LUN of the VM's virtio-scsi controller (none: refused).
 */
export function planDiskAttach(disk: Disk, chain: ImageChain, live: LiveAllocations): DiskAttachPlan {
  const from = `disks[${disk.name}]`;
  const scsi = diskBus(disk) === 'scsi';
  const b = builderFor(live) ?? new PlanBuilder('pcie.0', 0, { fdset: Math.max(0, ...live.fdsets) + 1 });
  if (builderFor(live) === null && !scsi) b.issue({ code: 'PLAN_PCI_EXHAUSTED', from, message: `no free hot-plug slot: every reserved pcie-root-port (hotplugSlots: ${live.freePorts.length}) is in use or none were reserved`, suggestion: 'set hotplugSlots in the spec (q35 reserves that many empty root ports at boot) and restart the VM, or detach a hot-plugged device' });
  if (live.diskNames.includes(disk.name)) b.issue({ code: 'PLAN_DUPLICATE', from: `${from}.name`, message: `the VM already has a disk named ${disk.name}`, suggestion: 'choose another --name' });
  if (diskBus(disk) === 'sata' || disk.media !== 'disk') b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.bus`, message: `only virtio and scsi disks can be hot-plugged (asked: ${diskBus(disk)} ${disk.media})` });
  const lun = scsi ? freeLun(live.scsiLuns) : null;
  if (scsi && live.scsiLuns === undefined) b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.bus`, message: 'the VM has no virtio-scsi controller to hot-plug a scsi disk on', suggestion: 'set scsiController: true in the spec (or give it a scsi disk) and restart the VM, or use --bus virtio' });
  else if (scsi && lun === null) b.issue({ code: 'PLAN_PCI_EXHAUSTED', from: `${from}.bus`, message: 'every LUN (0-255) of the virtio-scsi controller is in use' });
  const facts = { chains: { [disk.name]: chain } } as unknown as Facts;
  const top = planChain(disk, 0, facts, b);
  if (top !== null && !scsi) virtioDisk(disk, from, top, b);
  if (top !== null && scsi && lun !== null) scsiDisk(disk, from, top, lun, b);
  const fds: HotplugFd[] = b.fds.flatMap((f) => (f.kind === 'file' && f.fdset !== undefined ? [{ name: f.name, path: f.path, flags: f.flags, fdset: f.fdset }] : []));
  const steps: HotplugStep[] = [
    ...fds.map((f) => ({ command: 'add-fd', args: { 'fdset-id': f.fdset, opaque: f.name }, fd: f.name, undo: { command: 'remove-fd', args: { 'fdset-id': f.fdset } } })),
    ...b.qapi.map((q) => (q.command === 'object-add'
      ? { command: 'object-add', args: q.value, undo: { command: 'object-del', args: { id: q.value['id'] } } }
      : { command: q.command, args: q.value, undo: { command: 'blockdev-del', args: { 'node-name': q.value['node-name'] } } })),
    ...b.devices.map((d) => ({ command: 'device_add', args: d.value, undo: { command: 'device_del', args: { id: d.value['id'] } } })),
  ];
  return { deviceId: `disk-${disk.name}`, fds, steps, manifest: b.manifest, issues: b.issues };
}

/** The detach order: every step's inverse, last step first (device_del, blockdev-del top down, remove-fd). */
export function planDiskDetach(steps: readonly HotplugStep[]): QmpCall[] {
  return steps.flatMap((s) => (s.undo === null ? [] : [s.undo])).reverse();
}

/** The escaped form of a disk name inside a RegExp (names are [a-z][a-z0-9-]*; '-' is literal anyway). */
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A boot-time disk's steps as if it had been hot-plugged, read back from the argv its start
 * planned (plan/disks names everything after the disk): its -add-fd (opaque `disk-D-J[-data]`),
 * -blockdev nodes (`D-J-file|fmt|data`, `D-throttle`), throttle group (`tg-D`) and -device
 * (`disk-D`), in argv order, i.e. the order they were made. planDiskDetach then takes them
 * down in reverse. The fds (`paths`) are the layers' files, for the claims. Empty: no device.
 */
export function bootDiskSteps(argv: readonly string[], disk: string): HotplugStep[] {
  const opaque = new RegExp(`^disk-${esc(disk)}-[0-9]+(-data)?$`);
  const node = new RegExp(`^${esc(disk)}-([0-9]+-(file|fmt|data)|throttle)$`);
  const steps: HotplugStep[] = [];
  for (let i = 0; i + 1 < argv.length; i++) {
    const [opt, val] = [argv[i]!, argv[i + 1]!];
    if (opt === '-add-fd') {
      const kv = Object.fromEntries(val.split(',').map((p) => p.split('=') as [string, string]));
      if (opaque.test(kv['opaque'] ?? '')) steps.push({ command: 'add-fd', args: { 'fdset-id': Number(kv['set']), opaque: kv['opaque'] }, undo: { command: 'remove-fd', args: { 'fdset-id': Number(kv['set']) } } });
      continue;
    }
    if (opt !== '-blockdev' && opt !== '-object' && opt !== '-device') continue;
    let v: Record<string, unknown>;
    try { v = JSON.parse(val) as Record<string, unknown>; } catch { continue; }
    if (opt === '-blockdev' && node.test(String(v['node-name']))) steps.push({ command: 'blockdev-add', args: v, undo: { command: 'blockdev-del', args: { 'node-name': v['node-name'] } } });
    if (opt === '-object' && v['id'] === throttleGroupId(disk)) steps.push({ command: 'object-add', args: v, undo: { command: 'object-del', args: { id: v['id'] } } });
    if (opt === '-device' && v['id'] === `disk-${disk}`) steps.push({ command: 'device_add', args: v, undo: { command: 'device_del', args: { id: v['id'] } } });
  }
  return steps.some((s) => s.command === 'device_add') ? steps : [];
}
