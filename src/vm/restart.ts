/**
 * @module vm/restart: the daemon's restart policy, pure: whether a VM that ended without a
 * stop request is started again, and after how long (exponential backoff, reset by a run
 * that lasted long enough).
 */
import type { ExitReason } from './machine.js';

export type RestartPolicy = 'never' | 'on-failure' | 'always';

export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 60_000;
/** A run at least this long resets the backoff. */
export const STABLE_RUN_MS = 60_000;

/** Whether `reason` calls for a restart under `policy` (a requested stop or kill never does). */
export function wantsRestart(policy: RestartPolicy | undefined, reason: ExitReason): boolean {
  if (policy === 'on-failure') return reason === 'crashed' || reason === 'oom';
  if (policy === 'always') return reason === 'crashed' || reason === 'oom' || reason === 'poweroff';
  return false;
}

/** The delay before restart attempt `attempt` (0-based) and the next attempt number, given how long the run lasted. */
export function backoff(attempt: number, ranMs: number): { delayMs: number; attempt: number } {
  const n = ranMs >= STABLE_RUN_MS ? 0 : attempt;
  return { delayMs: Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** n), attempt: n + 1 };
}
