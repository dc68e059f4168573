/**
 * @module vm/machine: the pure VM state machine: the phases a VM can be in and the actions
 * each phase allows. No I/O; the lifecycle asks it before acting and records the result.
 */
import { VmError } from './errors.js';

/**
 * created: defined, never started. starting / stopping: an operation is in progress (or the
 * manager died during one; reconcile settles it). running / paused: QEMU is alive.
 * stopped: QEMU is gone after a stop or guest poweroff. crashed: QEMU died on its own.
 */
export type Phase = 'created' | 'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'crashed';

export type Action =
  | 'start' | 'stop' | 'kill' | 'pause' | 'resume' | 'restart' | 'delete' | 'console' | 'qmp' | 'logs' | 'inspect' | 'save' | 'migrate' | 'snapshot';

export const PHASES: readonly Phase[] = ['created', 'starting', 'running', 'paused', 'stopping', 'stopped', 'crashed'];

const ALIVE: readonly Action[] = ['stop', 'kill', 'restart', 'console', 'qmp', 'logs', 'inspect', 'save', 'migrate', 'snapshot'];

const ALLOWED: Readonly<Record<Phase, readonly Action[]>> = {
  created: ['start', 'delete', 'logs', 'inspect', 'snapshot'],
  starting: ['kill', 'logs', 'inspect'],
  running: [...ALIVE, 'pause'],
  paused: [...ALIVE, 'resume'],
  stopping: ['kill', 'logs', 'inspect'],
  stopped: ['start', 'delete', 'logs', 'inspect', 'restart', 'snapshot'],
  crashed: ['start', 'delete', 'logs', 'inspect', 'restart', 'snapshot'],
};

/** The actions a phase allows, in a stable order. */
export function allowedActions(phase: Phase): readonly Action[] {
  return ALLOWED[phase];
}

export function isAllowed(phase: Phase, action: Action): boolean {
  return ALLOWED[phase].includes(action);
}

/** Whether QEMU is expected to be alive in this phase (reconcile checks the process). */
export function expectsProcess(phase: Phase): boolean {
  return phase === 'running' || phase === 'paused' || phase === 'starting' || phase === 'stopping';
}

/** Throws VM_INVALID_STATE naming the VM, its phase, the action and what the phase allows. */
export function assertAllowed(vm: string, phase: Phase, action: Action): void {
  if (isAllowed(phase, action)) return;
  const allowed = ALLOWED[phase];
  throw new VmError('VM_INVALID_STATE', `cannot ${action} VM ${vm}: it is ${phase}`, {
    context: { vm, phase, action, allowed: [...allowed] },
    suggestions: [hint(vm, phase, action)],
  });
}

function hint(vm: string, phase: Phase, action: Action): string {
  const down = phase === 'created' || phase === 'stopped' || phase === 'crashed';
  if (down && (action === 'stop' || action === 'kill')) return `it is not running, nothing to ${action}${phase === 'created' ? '' : ` (why it stopped: warden inspect ${vm})`}`;
  if (down) return `start it first: warden start ${vm}`;
  if ((phase === 'running' || phase === 'paused') && action === 'delete') return `stop it first: warden stop ${vm}, or kill and delete it at once: warden delete --force ${vm}`;
  if (phase === 'running' && action === 'start') return `stop it first: warden stop ${vm}`;
  if (phase === 'paused' && action === 'start') return `stop it first: warden stop ${vm} (or resume it: warden resume ${vm})`;
  if (phase === 'running' && action === 'resume') return 'it is already running';
  if (phase === 'paused' && action === 'pause') return 'it is already paused';
  return `wait for the current operation to finish, or force it off: warden kill ${vm}`;
}

/** Why QEMU last stopped. */
export type ExitReason =
  /** The guest powered off (or QEMU exited 0 without a stop request). */
  | 'poweroff'
  /** A stop request succeeded (ACPI powerdown, or quit). */
  | 'stopped'
  /** `kill`, or `stop --force` / a stop that escalated to SIGKILL. */
  | 'killed'
  /** QEMU died on its own: a signal or a non-zero exit. */
  | 'crashed'
  /** The kernel's OOM killer killed it (seen in the cgroup's counters). */
  | 'oom'
  /** Starting failed; every step was undone. */
  | 'start-failed'
  /** The manager died during an operation; the next command cleaned up. */
  | 'interrupted';

/** The phase a VM ends up in after QEMU is gone, by reason. */
export function phaseAfterExit(reason: ExitReason): Phase {
  return reason === 'crashed' || reason === 'oom' ? 'crashed' : 'stopped';
}
