/** @module shim/task: one containerd task as the shim tracks it (a VM, or a CRI sandbox placeholder), and the exit status containerd reports. */
import { constants } from 'node:os';
import type { VmRecord } from '../vm/index.js';
import type { Sandbox } from './sandbox.js';
import type { ConsoleCopy } from './stdio.js';

export type Status = 'created' | 'running' | 'paused' | 'stopped';

export interface Task {
  id: string;
  ns: string;
  vm: string;
  bundle: string;
  io: { stdin: string; stdout: string; stderr: string; terminal: boolean };
  pid: number;
  status: Status;
  exit?: { status: number; at: Date };
  exited: Promise<void>;
  markExited(): void;
  console?: ConsoleCopy;
  mounts: number;
  cgroups: string[];
  /** The tail of this VM's operation queue. */
  queue: Promise<unknown>;
  checking: boolean;
  powerdown: boolean;
  /** Set for a CRI pod sandbox container: a placeholder process, no VM. */
  sandbox?: Sandbox;
}

export function newTask(id: string, ns: string, vm: string, bundle: string, io: Task['io']): Task {
  let markExited!: () => void;
  const exited = new Promise<void>((res) => { markExited = res; });
  return { id, ns, vm, bundle, io, pid: 0, status: 'created', mounts: 0, cgroups: [], queue: Promise.resolve(), checking: true, powerdown: false, exited, markExited };
}

/** The exit status containerd reports: the code, or 128 + the signal's number. */
export function exitStatusOf(rec: VmRecord): number {
  const e = rec.lastExit;
  if (typeof e?.code === 'number') return e.code;
  const sig = e?.signal === undefined || e.signal === null ? undefined : constants.signals[e.signal as NodeJS.Signals];
  return sig === undefined ? 255 : 128 + sig;
}
