/** @module jail/procfs: the few /proc facts the jailer needs: a process's identity (pid + start time), liveness, children. */
import { readFileSync } from 'node:fs';

/** A process named so that a reused pid is not mistaken for it: start time in clock ticks since boot. */
export interface ProcessId { pid: number; start: string }

function statFields(pid: number, procRoot: string): string[] | undefined {
  try {
    const text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the fields after it start past the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  } catch { return undefined; }
}

/** The identity of a running (non-zombie) pid, or undefined when there is none. */
export function processId(pid: number, procRoot = '/proc'): ProcessId | undefined {
  const f = statFields(pid, procRoot);
  // f[0] is the state (field 3), f[19] the start time (field 22).
  if (f === undefined || f[0] === 'Z' || f[0] === 'X' || f[19] === undefined) return undefined;
  return { pid, start: f[19] };
}

/** True while that exact process (same pid, same start time) exists and is not a zombie. */
export function isAlive(id: ProcessId | undefined, procRoot = '/proc'): boolean {
  if (id === undefined) return false;
  return processId(id.pid, procRoot)?.start === id.start;
}

/** Direct children of a single-threaded process. */
export function childrenOf(pid: number, procRoot = '/proc'): number[] {
  try {
    return readFileSync(`${procRoot}/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '').map(Number);
  } catch { return []; }
}

/** The NSpid line of /proc/PID/status: the pid in each nested pid namespace, outermost first. */
export function nsPids(pid: number, procRoot = '/proc'): number[] {
  try {
    const line = readFileSync(`${procRoot}/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    return line === undefined ? [] : line.slice(6).trim().split(/\s+/).map(Number);
  } catch { return []; }
}
