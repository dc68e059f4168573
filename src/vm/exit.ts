/** @module vm/exit: why QEMU stopped, from its exit status, what the manager asked for, and the cgroup's OOM counter. */
import { constants } from 'node:os';
import type { Fs } from '../sys/index.js';
import type { ExitReason } from './machine.js';
import type { ProgramExit } from './ports.js';

export interface ExitFacts {
  /** The program's exit, or null when nobody could observe it. */
  exit: ProgramExit | null;
  intent?: 'stop' | 'kill' | undefined;
  /** The stop escalated to SIGKILL. */
  escalated?: boolean;
  oomKilled?: boolean;
  /** QMP's SHUTDOWN reason if the manager saw it ("guest-shutdown", "host-qmp-quit" ...). */
  shutdownReason?: string | undefined;
}

/** Exit status as reported by a launcher that maps a signal to 128 + its number (bwrap). */
export function fromStatusCode(code: number | null): ProgramExit {
  if (code !== null && code > 128 && code < 128 + 65) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name !== undefined) return { code: null, signal: name as NodeJS.Signals };
  }
  return { code, signal: null };
}

/** The reason and a one-line explanation. Pure. */
export function classifyExit(f: ExitFacts): { reason: ExitReason; detail: string } {
  const e = f.exit;
  const how = e === null ? 'its exit status is unknown'
    : e.signal !== null ? `it was killed by ${e.signal}` : `it exited with status ${String(e.code)}`;
  if (f.oomKilled) return { reason: 'oom', detail: `QEMU was killed by the kernel's OOM killer (memory limit of its cgroup); ${how}` };
  if (f.intent === 'kill') return { reason: 'killed', detail: `killed on request; ${how}` };
  if (f.intent === 'stop') {
    if (f.escalated) return { reason: 'killed', detail: 'the stop did not finish in time and escalated to SIGKILL' };
    if (f.shutdownReason === 'guest-shutdown') return { reason: 'stopped', detail: 'stopped on request: the guest powered off' };
    if (f.shutdownReason === 'host-qmp-quit') return { reason: 'stopped', detail: 'stopped on request: QEMU quit (QMP)' };
    return { reason: 'stopped', detail: `stopped on request; ${how}` };
  }
  if (e !== null && e.signal === null && e.code === 0) {
    return { reason: 'poweroff', detail: f.shutdownReason === undefined || f.shutdownReason === 'guest-shutdown' ? 'the guest powered off' : `QEMU shut down (${f.shutdownReason})` };
  }
  return { reason: 'crashed', detail: `QEMU died: ${how}` };
}

/** True when a cgroup of the jail counted an OOM kill (v2 memory.events, v1 memory.oom_control). */
export async function sawOomKill(fs: Fs, cgroups: readonly string[]): Promise<boolean> {
  for (const dir of cgroups) {
    for (const file of ['memory.events', 'memory.oom_control']) {
      try {
        const m = /^oom_kill (\d+)$/m.exec(await fs.readFile(`${dir}/${file}`));
        if (m !== null && Number(m[1]) > 0) return true;
      } catch { /* not this hierarchy or already removed */ }
    }
  }
  return false;
}
