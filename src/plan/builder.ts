/**
 * @module plan/builder: the accumulator one planning run writes into: argv with its trace,
 * fds numbered in order (3 + index), fdsets, host actions, manifest, QAPI objects to check
 * and issues. Deterministic: numbers depend only on the order of calls.
 */
import type { HostAction } from '../net/index.js';
import type { PlannedCommand } from '../qemu/index.js';
import type { PlanIssue } from './errors.js';
import type { ArgTrace, HelperPlan, ManifestEntry, ManifestKind, OpenFlag, PlannedFd } from './types.js';

/** qemu/qapi's list: the capability cache keeps the schema of these commands only. */
export type QapiCommand = PlannedCommand;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface QapiCheck { command: QapiCommand; value: Record<string, unknown>; from: string }

/** First free PCI slot: 0 is the host bridge, 1 the PIIX3 on pc; 0x1f is the LPC/AHCI function on q35. */
const FIRST_SLOT = 2;

export class PlanBuilder {
  readonly argv: string[] = [];
  readonly trace: ArgTrace[] = [];
  readonly fds: PlannedFd[] = [];
  readonly actions: HostAction[] = [];
  readonly manifest: ManifestEntry[] = [];
  readonly qapi: QapiCheck[] = [];
  readonly devices: Array<{ driver: string; from: string; value: Record<string, unknown> }> = [];
  readonly issues: PlanIssue[] = [];
  readonly helpers: HelperPlan[] = [];
  private nextFdset: number;
  private nextSlot: number;

  /** `first`: where numbering starts (hot-plug plans continue a running VM's fdsets and slots). */
  constructor(readonly pciBus: string, private readonly lastSlot: number, first: { fdset?: number; slot?: number } = {}) {
    this.nextFdset = first.fdset ?? 1;
    this.nextSlot = first.slot ?? FIRST_SLOT;
  }

  /** Appends an option and its values, all traced to `from`. */
  arg(from: string, ...args: string[]): void {
    for (const a of args) { this.argv.push(a); this.trace.push({ arg: a, from }); }
  }

  /** -blockdev/-netdev/-object in JSON syntax, remembered for the QAPI check. */
  qapiArg(from: string, option: '-blockdev' | '-netdev' | '-object', command: QapiCommand, value: Record<string, unknown>): void {
    this.qapi.push({ command, value, from });
    this.arg(from, option, JSON.stringify(value));
  }

  /** -device in JSON syntax; the driver is checked against the binary's device list. */
  device(from: string, value: Record<string, unknown>): void {
    this.devices.push({ driver: String(value['driver']), from, value });
    this.arg(from, '-device', JSON.stringify(value));
  }

  /** A file QEMU reaches through -add-fd; returns "/dev/fdset/N" for its argv. */
  fdsetFile(from: string, name: string, path: string, flags: OpenFlag[], opaque: string, template?: string): string {
    const fdset = this.nextFdset++;
    const target = this.pushFd({ kind: 'file', name, path, flags, fdset, from, ...(template === undefined ? {} : { template }) });
    this.arg(from, '-add-fd', `fd=${target},set=${fdset},opaque=${opaque}`);
    return `/dev/fdset/${fdset}`;
  }

  /** A log QEMU writes through -add-fd (a pipe to the log writer); returns "/dev/fdset/N". */
  fdsetLog(from: string, name: string, path: string, capBytes: number, opaque: string): string {
    const fdset = this.nextFdset++;
    const target = this.pushFd({ kind: 'log', name, path, capBytes, fdset, from });
    this.arg(from, '-add-fd', `fd=${target},set=${fdset},opaque=${opaque}`);
    return `/dev/fdset/${fdset}`;
  }

  /** A file QEMU opens by name with plain open(): a sealed copy it reads as /proc/self/fd/N; returns that path. */
  sealedCopy(from: string, name: string, path: string): string {
    return `/proc/self/fd/${this.pushFd({ kind: 'sealed-copy', name, path, from })}`;
  }

  listenFd(from: string, name: string, path: string): number {
    return this.pushFd({ kind: 'unix-listen', name, path, from });
  }

  /** QEMU's end of the socketpair `pair` (the helper names the other end); returns its fd number. */
  socketPair(from: string, name: string, pair: string): number {
    return this.pushFd({ kind: 'socketpair', name, pair, from });
  }

  /** Adds a host action and one fd per name the action will open; returns the fd numbers. */
  action(from: string, action: HostAction, fdNames: readonly string[]): number[] {
    const index = this.actions.length;
    this.actions.push(action);
    return fdNames.map((name) => this.pushFd({ kind: 'host-action', name, action: index, from }));
  }

  /** The next PCI slot on the root bus, as {bus, addr}. */
  pci(from: string): { bus: string; addr: string } {
    const slot = this.nextSlot++;
    if (slot === this.lastSlot + 1) {
      this.issue({ code: 'PLAN_PCI_EXHAUSTED', from, message: `no free PCI slot on ${this.pciBus} (slots 0x${FIRST_SLOT.toString(16)}-0x${this.lastSlot.toString(16)} are taken)`, suggestion: 'use fewer virtio disks and NICs, or put disks on one scsi controller' });
    }
    return { bus: this.pciBus, addr: `0x${slot.toString(16)}` };
  }

  note(kind: ManifestKind, resource: string, access: string, from: string, note?: string): void {
    this.manifest.push(note === undefined ? { kind, resource, access, from } : { kind, resource, access, from, note });
  }

  issue(i: PlanIssue): void {
    this.issues.push(i);
  }

  private pushFd(fd: DistributiveOmit<PlannedFd, 'target'>): number {
    const target = 3 + this.fds.length;
    this.fds.push({ ...fd, target } as PlannedFd);
    return target;
  }
}
