/**
 * @module plan/hotplug: a disk hot-plug as a pure function of the running VM's allocations
 * and the disk: the fds to open, the QMP steps (each with its inverse) and the manifest. The
 * nodes, fds and device come from the same code as boot-time -blockdev/-device (plan/disks
 * planChain, virtioDisk), rendered as add-fd, blockdev-add and device_add instead of argv.
 */
import type { ImageChain } from '../image/index.js';
import type { Disk, Spec } from '../spec/index.js';
import { PlanBuilder } from './builder.js';
import { diskBus, planChain, virtioDisk } from './disks.js';
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
 * hot-plug). scsi needs a controller the VM may lack: refused as an issue for now.
 */
export function planDiskAttach(disk: Disk, chain: ImageChain, live: LiveAllocations): DiskAttachPlan {
  const from = `disks[${disk.name}]`;
  const b = builderFor(live) ?? new PlanBuilder('pcie.0', 0);
  if (builderFor(live) === null) b.issue({ code: 'PLAN_PCI_EXHAUSTED', from, message: `no free hot-plug slot: every reserved pcie-root-port (hotplugSlots: ${live.freePorts.length}) is in use or none were reserved`, suggestion: 'set hotplugSlots in the spec (q35 reserves that many empty root ports at boot) and restart the VM, or detach a hot-plugged device' });
  if (live.diskNames.includes(disk.name)) b.issue({ code: 'PLAN_DUPLICATE', from: `${from}.name`, message: `the VM already has a disk named ${disk.name}`, suggestion: 'choose another --name' });
  if (diskBus(disk) !== 'virtio' || disk.media !== 'disk') b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.bus`, message: `only virtio disks can be hot-plugged yet (asked: ${diskBus(disk)} ${disk.media})` });
  const facts = { chains: { [disk.name]: chain } } as unknown as Facts;
  const top = planChain(disk, 0, facts, b);
  if (top !== null) virtioDisk(disk, from, top, b);
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
