/** @module vm/proc: facts about host processes from /proc (through the Fs port): liveness with pid-reuse safety, status fields. */
import { constants } from 'node:os';
import { loadNative, type Fs } from '../sys/index.js';
import type { ProcId } from './record.js';

/** Fields of /proc/PID/stat after the command name, which may itself contain spaces and parentheses. */
function statFields(text: string): string[] {
  const close = text.lastIndexOf(')');
  return close < 0 ? [] : text.slice(close + 2).trim().split(/\s+/);
}

/** The process state letter and start time (field 22, clock ticks since boot), or null if there is no such process. */
export async function procStat(fs: Fs, pid: number): Promise<{ state: string; startTime: number; ppid: number } | null> {
  let text: string;
  try {
    text = await fs.readFile(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  const f = statFields(text);
  // After "pid (comm) ": f[0] is state (field 3), f[1] ppid (field 4), f[19] starttime (field 22).
  const startTime = Number(f[19]);
  if (f[0] === undefined || !Number.isFinite(startTime)) return null;
  return { state: f[0], ppid: Number(f[1]), startTime };
}

const bootIds = new Map<string, string | undefined>();

/** This boot's id (/proc/sys/kernel/random/boot_id), read once per Fs root; undefined where there is none. */
export async function bootId(fs: Fs): Promise<string | undefined> {
  if (bootIds.has(fs.root)) return bootIds.get(fs.root);
  let id: string | undefined;
  try { id = (await fs.readFile('/proc/sys/kernel/random/boot_id')).trim() || undefined; } catch { id = undefined; }
  bootIds.set(fs.root, id);
  return id;
}

/** The identity of a live process, for recording. */
export async function procId(fs: Fs, pid: number): Promise<ProcId | null> {
  const st = await procStat(fs, pid);
  if (st === null) return null;
  const boot = await bootId(fs);
  return boot === undefined ? { pid, startTime: st.startTime } : { pid, startTime: st.startTime, boot };
}

/**
 * True when `id` names a live process (not a zombie) and the same one: start time matches, and
 * it was recorded in this boot (a record from before a power loss names no live process, even
 * when an early process of this boot has its pid and start time: it must never be signalled).
 */
export async function isAlive(fs: Fs, id: ProcId): Promise<boolean> {
  if (id.boot !== undefined && id.boot !== (await bootId(fs) ?? id.boot)) return false;
  const st = await procStat(fs, id.pid);
  return st !== null && st.startTime === id.startTime && st.state !== 'Z' && st.state !== 'X';
}

/** The key: value lines of /proc/PID/status (Uid, CapEff, NoNewPrivs, Seccomp ...). */
export async function procStatus(fs: Fs, pid: number): Promise<Record<string, string> | null> {
  let text: string;
  try {
    text = await fs.readFile(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Children of a pid (from /proc/PID/task/PID/children, where the kernel has it). */
export async function procChildren(fs: Fs, pid: number): Promise<number[]> {
  try {
    const text = await fs.readFile(`/proc/${pid}/task/${pid}/children`);
    return text.trim().split(/\s+/).filter((s) => s !== '').map(Number);
  } catch {
    return [];
  }
}

/**
 * Signals the process `id` names and no other: a pidfd pins the process that holds the pid
 * when it is opened, and the start time checked after that tells whether it is ours. So a
 * QEMU that died and whose pid went to another process is never hit. False when gone.
 */
export async function signalProc(fs: Fs, id: ProcId, sig: NodeJS.Signals): Promise<boolean> {
  const native = loadNative();
  let fd: number;
  try {
    fd = native.pidfdOpen(id.pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    if (!(await isAlive(fs, id))) return false;
    native.pidfdSignal(fd, constants.signals[sig]);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  } finally {
    native.closeFd(fd);
  }
}
