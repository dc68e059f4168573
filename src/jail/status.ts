/** @module jail/status: reading the status file bwrap writes (child-pid first, exit-code last), without being the jail's parent. */
import { readFileSync } from 'node:fs';

/** How a jailed program ended. `exitCode` is bwrap's: the exit status, or 128 + the signal number. */
export type JailExit =
  | { exitCode: number }
  /** The sandbox's monitor died before reporting (e.g. killed by teardown). */
  | { exitCode: null; reason: 'unreported' };

export interface JailStatus {
  /** bwrap's sandbox init (pid 1 inside), not the program: the program is its child. */
  initPid?: number;
  exit?: JailExit;
}

/** Parses bwrap's --json-status-fd output: one JSON object per line; a partial last line is ignored. */
export function parseJailStatus(text: string): JailStatus {
  const status: JailStatus = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let obj: Record<string, unknown>;
    try { obj = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
    if (typeof obj['child-pid'] === 'number') status.initPid = obj['child-pid'];
    if (typeof obj['exit-code'] === 'number') status.exit = { exitCode: obj['exit-code'] };
  }
  return status;
}

/** The exit recorded in a status file, or undefined while the program runs (or the file is missing). */
export function readJailExit(statusFile: string): JailExit | undefined {
  try { return parseJailStatus(readFileSync(statusFile, 'utf8')).exit; } catch { return undefined; }
}

export function readJailStatus(statusFile: string): JailStatus {
  try { return parseJailStatus(readFileSync(statusFile, 'utf8')); } catch { return {}; }
}
