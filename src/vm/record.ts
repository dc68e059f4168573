/** @module vm/record: the persisted shape of one VM (vm.json), data only. */
import type { ExitReason, Phase } from './machine.js';
import type { UndoRecord } from './undo.js';

export type { UndoRecord };

/**
 * A process identity that survives pid reuse: the pid plus its start time in clock ticks since
 * boot, and the boot it was recorded in (start times restart at every boot, so after a power
 * loss an early process of the next boot can have an old record's pid and start time).
 */
export interface ProcId {
  pid: number;
  startTime: number;
  /** /proc/sys/kernel/random/boot_id when recorded; absent in records of older versions. */
  boot?: string;
}

/** A disk layer the running VM holds, for the one-writer rule. */
export interface DiskClaim {
  path: string;
  dev: number;
  ino: number;
  writable: boolean;
}

/** A user-mode host forward as it runs: `host` is the port bound (a spec's host: 0 gets a free one at start). */
export interface ForwardInfo { network: string; proto: 'tcp' | 'udp'; hostAddress: string; host: number; guest: number }

/** What a running VM holds; present from the moment QEMU is spawned until teardown. */
export interface RunInfo {
  /** QEMU itself (the host pid of the jailed program). */
  qemu: ProcId;
  /** The launcher process that is QEMU's ancestor (bwrap), when there is one. */
  launcher?: ProcId;
  uid: number;
  gid: number;
  accel: 'kvm' | 'tcg';
  startedAt: string;
  jailName: string;
  /** cgroup directories of the jail (for OOM counters before teardown). */
  cgroups: string[];
  /** Where the launcher records the program's exit status, if it does. */
  statusFile?: string;
  /** Protections that are off for this VM (non-root, no cgroup ...), for inspect. */
  protectionsOff: string[];
  /** The VM's log writer (serial.log, qemu.log). */
  logd?: ProcId;
  /** User-mode forwards with the host ports they run on (vm/endpoints sshEndpoint reads them). */
  forwards?: ForwardInfo[];
}

/** A helper program (passt ...) running in its own jail for this VM. */
export interface HelperRun {
  kind: string;
  /** The spec field it serves (networks[0]). */
  from: string;
  jailName: string;
  proc: ProcId;
  uid: number;
  gid: number;
  cgroups: string[];
  statusFile?: string;
}

export interface ExitInfo {
  reason: ExitReason;
  at: string;
  code?: number | null;
  signal?: string | null;
  /** One line for humans: "the guest powered off", "QEMU was killed by SIGKILL" ... */
  detail: string;
}


export interface VmRecord {
  version: 1;
  name: string;
  phase: Phase;
  /** The spec as validated, paths absolute (JSON of the spec module's Spec). */
  spec: Record<string, unknown>;
  specFile?: string;
  /** The uid that created the VM (its owner for the API's access checks). */
  owner?: number;
  createdAt: string;
  updatedAt: string;
  run?: RunInfo;
  /** Helpers of the current run, started before QEMU (plan order). */
  helpers?: HelperRun[];
  /** Disk layers claimed while starting or running (checked against other VMs). */
  disks?: DiskClaim[];
  /** Host changes of the current (or interrupted) start, in the order made. */
  undo?: UndoRecord[];
  /** What the last stop/kill asked for, so an exit can be told apart from a crash. */
  intent?: 'stop' | 'kill';
  lastExit?: ExitInfo;
  /** Warnings from the last start (e.g. KVM fell back to TCG). */
  warnings?: string[];
  /** Set by `warden save` (the state file and QEMU's migration figures); cleared by the next start or restore. */
  saved?: { file: string; at: string; migration: Record<string, unknown> };
  /** Devices hot-plugged into the current run, each recorded before each of its steps (vm/hotplug). */
  hotplug?: HotplugEntry[];
  /** External disk snapshots and the layers they made (vm/snapshot). */
  snapshots?: SnapshotState;
  /** Set while this VM is the target of a live migration (vm/migrate-run): a daemon that finds it so after a crash removes the VM once its start is undone. */
  incomingSince?: string;
}

/** One hot-plugged device and how far its attach or detach got. */
export interface HotplugEntry {
  /** Absent: a disk (vm/hotplug); 'nic': a NIC (vm/hotplug-nic), whose `disk` holds the Network as the spec holds it. */
  kind?: 'nic';
  /** The disk's name; `run` is the run's startedAt (an entry of an older run is stale). */
  name: string;
  run: string;
  deviceId: string;
  state: 'attaching' | 'attached' | 'removing';
  /** The steps planned (plan/hotplug) and how many were begun. */
  steps: Array<{ command: string; args: Record<string, unknown>; fd?: string; undo: { command: string; args: Record<string, unknown> } | null }>;
  begun: number;
  claims: DiskClaim[];
  /** The disk as the spec holds it. */
  disk: Record<string, unknown>;
  liveOnly: boolean;
  /** When the attach finished (inspect shows it). */
  attachedAt?: string;
  /** Set by a detach whose device_del was sent: since when, and whether the spec keeps the disk (liveOnly). */
  removing?: { since: string; liveOnly: boolean };
  /** A disk QEMU was started with, taken over by a detach (its steps read back from the run's plan). */
  boot?: boolean;
  /** NICs: the host network undo log (src/net) of its TAP, journalled as it grows. */
  net?: unknown;
  /** NICs with a helper (passt for user networking): its jail, recorded before it is launched. */
  helper?: { jailName: string; owner: string };
}

/** A VM's external snapshots: what each froze, which files the manager made, what QEMU holds now, an operation in progress. */
export interface SnapshotState {
  list: SnapshotEntry[];
  /** Overlay files the manager created for this VM and has not removed (only these are ever deleted). */
  owned: string[];
  /** The disks' layers as the current run's QEMU holds them (top first); `run` is the run's startedAt. */
  live?: { run: string; seq: number; disks: Record<string, Array<{ path: string; format: string; node: string; file: string; fdset: number }>> };
  /** An operation begun and not finished: recorded before its first step; the next snapshot command settles it. */
  op?: SnapshotOp;
}

export interface SnapshotEntry {
  name: string;
  createdAt: string;
  /** The VM's phase when it was taken (a revert starts the VM again when it ran). */
  vmPhase: string;
  /** The save file with the RAM and device state (`--memory`). */
  memory?: string;
  /** Per writable disk: the layer frozen (`base`, its chain below, top first) and the overlay made over it. */
  disks: Array<{ disk: string; base: string; baseFormat: string; chain: string[]; overlay: string }>;
  /** Set while the layer above is being merged into `base` (a killed delete is finished by the next command). */
  deleting?: boolean;
  /** Device and inode of each directory its files were made in (vm/snapshot-dir): later creates and removals there check it. */
  dirs?: Record<string, { dev: number; ino: number }>;
}

export interface SnapshotOp {
  kind: 'create' | 'revert';
  snap: string;
  /** startedAt of the run it acts on ('' for a stopped VM). */
  run: string;
  /** Files it creates (removed when it is undone). */
  files: string[];
  /** QMP steps planned, all counted as begun (their inverses are undone on recovery, "not found" ignored). */
  steps: Array<{ command: string; args: Record<string, unknown>; fd?: string; undo: { command: string; args: Record<string, unknown> } | null }>;
  /** The top node a disk's overlay replaces in the transaction: if QEMU shows the overlay there, the transaction happened. */
  check?: { disk: string; node: string };
  /** Device and inode of each directory `files` are made in (vm/snapshot-dir): an undo removes them only from that directory. */
  dirs?: Record<string, { dev: number; ino: number }>;
}
