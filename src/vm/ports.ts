/**
 * @module vm/ports: what the lifecycle needs from the layers below (image prober, planner,
 * jailer, network, QMP), as small interfaces (the plan is the planner's own type). backends.ts binds them to the real modules;
 * tests bind them to the same real modules and add fault injection where needed.
 */
import type { JailSpec } from '../jail/index.js';
import type { HostAction } from '../net/index.js';
import type { Facts, OpenFlag, Plan, PlannedFd } from '../plan/index.js';
import type { Spec } from '../spec/index.js';
import type { GatheredFacts } from './facts.js';

/** The parts of a validated spec (src/spec) the lifecycle reads; the rest is passed through to the planner. */
export interface SpecView {
  name: string;
  accel: 'auto' | 'kvm' | 'tcg';
  disks: Array<{ name: string; image: string; format: string; readOnly: boolean; media: string }>;
  networks: Array<{ name: string; type: string }>;
}

/** The planner's output and its fds (src/plan). */
export type PlanView = Plan;
export type PlannedFdView = PlannedFd;
export type { OpenFlag };

/** How a jailed program ended, as its launcher reports it. */
export interface ProgramExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A launched program (QEMU) in its jail. */
export interface Launched {
  pid: number;
  uid: number;
  gid: number;
  cgroups: string[];
  launcherPid?: number;
  statusFile?: string;
  /** Protections that are off (non-root runs, missing kernel features). */
  protectionsOff: string[];
}

export interface JailPort {
  /** `owner` tags the jail (the VM's state directory) so that teardown never touches a same-named jail of another owner. */
  launch(spec: JailSpec, fds: ReadonlyMap<string, number>, stderrFd: number, statusFile: string, owner: string): Promise<Launched>;
  /** The program's exit if the launcher recorded it (works from any process), else null. */
  exitOf(jailName: string, statusFile: string | undefined): Promise<ProgramExit | null>;
  /** Kills what remains, removes the cgroup, releases the lease; idempotent. Leaves a jail of another owner alone. */
  teardown(jailName: string, owner?: string): Promise<void>;
}

export interface NetPort {
  /** Performs the actions; fds by name. `record` receives the undo log (JSON) after every change. */
  apply(vm: string, actions: readonly HostAction[], record: (undoLog: unknown) => Promise<void>): Promise<Map<string, number>>;
  undo(undoLog: unknown): Promise<void>;
}

/** A QMP connection (src/qmp QmpClient, seen untyped). */
export interface QmpConn {
  /** `fds` go with the command over SCM_RIGHTS (getfd, add-fd). */
  execute(command: string, args?: Record<string, unknown>, timeoutMs?: number, fds?: readonly number[]): Promise<unknown>;
  close(): Promise<void>;
  /** Subscribes to QMP events by name (subscribe before the command that causes them); absent: this port delivers none. */
  events?(names: readonly string[]): QmpEvents;
}

/** A subscription to QMP events (src/qmp EventSubscription, seen untyped). */
export interface QmpEvents {
  /** The next matching event; rejects with QMP_TIMEOUT after `timeoutMs`, QMP_DISCONNECTED when the connection ends. */
  next(o?: { timeoutMs?: number; match?: (e: { event: string; data: Record<string, unknown> }) => boolean }): Promise<{ event: string; data: Record<string, unknown> }>;
  close(): void;
}

export interface Backends {
  qemuBinary: string;
  /** Host facts for planning `spec` with its state under `stateRoot` (vm/facts gatherFacts, this process's probes). */
  facts(spec: Spec, stateRoot: string, o?: { choosePorts?: boolean; owner?: number }): Promise<GatheredFacts>;
  /** The pure planner on those facts. */
  plan(spec: Spec, facts: Facts): PlanView;
  /** The validated spec from a spec file's text (paths resolved against the file's directory). */
  parseSpec(text: string, file: string): Record<string, unknown>;
  jail: JailPort;
  /** The user the VM's log writer runs as (root drops it to this one); null: the calling user. */
  logUser: { uid: number; gid: number } | null;
  net: NetPort;
  qmpConnect(path: string, timeoutMs: number): Promise<QmpConn>;
}
