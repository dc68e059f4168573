/** @module jail/handle: a running jail as the caller sees it: the program's real pid, waiting for its exit, signalling it. */
import type { JailRecord } from './lease-store.js';
import { isAlive } from './procfs.js';
import { readJailExit, type JailExit } from './status.js';

export interface JailHandle {
  name: string;
  /** The program's pid as seen from the host (not bwrap's monitor or the sandbox init). */
  pid: number;
  uid: number;
  gid: number;
  /** The jail's cgroup directories (one per v1 hierarchy, one on v2). */
  cgroupPaths: string[];
  /** bwrap's outer process; it writes the exit status and lives as long as the sandbox. */
  monitorPid: number;
  statusFile: string;
  /** Resolves once the program has ended (works without being its parent: reads the status file). */
  wait(options?: { pollMs?: number }): Promise<JailExit>;
  /** The exit, if it has happened. */
  exited(): JailExit | undefined;
  /** Signals the program itself; false when it is already gone (never signals a reused pid). */
  kill(signal?: NodeJS.Signals): boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A handle over a jail record whose program has started; used by launch and by reconnection (attachJail). */
export function handleFromRecord(record: JailRecord): JailHandle {
  const program = record.program;
  const monitor = record.monitor;
  if (program === undefined || monitor === undefined) throw new TypeError(`jail "${record.name}" has not started`);
  const exited = (): JailExit | undefined => readJailExit(record.statusFile);
  return {
    name: record.name,
    pid: program.pid,
    uid: record.uid,
    gid: record.gid,
    cgroupPaths: record.cgroupLeaves,
    monitorPid: monitor.pid,
    statusFile: record.statusFile,
    exited,
    kill(signal = 'SIGTERM') {
      if (!isAlive(program)) return false;
      try { process.kill(program.pid, signal); return true; } catch { return false; }
    },
    async wait(options = {}) {
      for (;;) {
        const exit = exited();
        if (exit !== undefined) return exit;
        // The monitor writes the exit before it ends: once it is gone, the file is final.
        if (!isAlive(monitor)) return exited() ?? { exitCode: null, reason: 'unreported' };
        await sleep(options.pollMs ?? 20);
      }
    },
  };
}
