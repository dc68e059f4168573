/**
 * @module vm/teardown: ending a VM's run from its persisted record alone, so it works in
 * the process that started the VM and in any later one: learn how QEMU ended, kill what
 * remains, undo the recorded host changes in reverse, record the reason.
 */
import type { Fs } from '../sys/index.js';
import { classifyExit, sawOomKill } from './exit.js';
import { phaseAfterExit, type ExitReason } from './machine.js';
import { isAlive, signalProc } from './proc.js';
import { undoOne, type UndoRecord } from './undo.js';
import type { Backends, ProgramExit } from './ports.js';
import type { StateStore } from './store.js';
import type { ProcId, VmRecord } from './record.js';

export interface TeardownDeps {
  fs: Fs;
  store: StateStore;
  backends: Backends;
  now(): string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until the process is gone; false on timeout. */
export async function waitGone(fs: Fs, id: ProcId | undefined, timeoutMs: number): Promise<boolean> {
  if (id === undefined) return true;
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(fs, id)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}


/** Undoes recorded host changes in reverse; every record is tried even if one fails. The failed ones are returned to retry later. */
export async function undoRecords(d: TeardownDeps, undo: readonly UndoRecord[]): Promise<{ failures: string[]; remaining: UndoRecord[] }> {
  const failures: string[] = [];
  const remaining: UndoRecord[] = [];
  for (const u of [...undo].reverse()) {
    try {
      await undoOne(d, u);
    } catch (err) {
      failures.push(`${u.kind}: ${String((err as Error)?.message ?? err)}`);
      remaining.unshift(u);
    }
  }
  return { failures, remaining };
}

/** Retries undo records a previous teardown could not complete (the phase and reason stay). */
export async function retryUndo(d: TeardownDeps, rec: VmRecord): Promise<VmRecord> {
  const { remaining } = await undoRecords(d, rec.undo ?? []);
  const out: VmRecord = { ...rec, updatedAt: d.now() };
  if (remaining.length > 0) out.undo = remaining;
  else delete out.undo;
  await d.store.write(out);
  return out;
}

export interface EndFacts {
  intent?: 'stop' | 'kill' | undefined;
  escalated?: boolean;
  shutdownReason?: string | undefined;
  /** Overrides the classification (interrupted starts, failed starts). */
  reason?: ExitReason;
  detail?: string;
  /** The exit as seen by this process, if it is QEMU's launcher's parent. */
  exit?: ProgramExit | null;
}

/**
 * Ends the run recorded in `rec`: reads the exit (status file) and OOM counters before
 * anything is removed, kills QEMU if it still lives, undoes every recorded host change,
 * then writes the record with the phase and reason. Idempotent.
 */
export async function endRun(d: TeardownDeps, rec: VmRecord, f: EndFacts = {}): Promise<VmRecord> {
  const run = rec.run;
  if (run !== undefined && (await signalProc(d.fs, run.qemu, 'SIGKILL'))) {
    await waitGone(d.fs, run.qemu, 5000);
  }
  // The launcher records the exit once QEMU is gone; give it time to write (only a loaded host needs more than ms).
  await waitGone(d.fs, run?.launcher, 5000);
  const exit = f.exit !== undefined && f.exit !== null ? f.exit
    : run === undefined ? null : await d.backends.jail.exitOf(run.jailName, run.statusFile);
  const oomKilled = run === undefined ? false : await sawOomKill(d.fs, run.cgroups);
  const { failures, remaining } = await undoRecords(d, rec.undo ?? []);
  const c = f.reason !== undefined ? { reason: f.reason, detail: f.detail ?? f.reason }
    : classifyExit({ exit, intent: f.intent ?? rec.intent, escalated: f.escalated ?? false, oomKilled, shutdownReason: f.shutdownReason });
  const out: VmRecord = { ...rec, phase: rec.phase === 'created' && run === undefined ? 'created' : phaseAfterExit(c.reason), updatedAt: d.now(),
    lastExit: { reason: c.reason, at: d.now(), code: exit?.code ?? null, signal: exit?.signal ?? null, detail: c.detail } };
  delete out.run;
  delete out.helpers;
  delete out.undo;
  // What could not be undone stays recorded; the next command retries it.
  if (remaining.length > 0) out.undo = remaining;
  delete out.disks;
  delete out.intent;
  if (failures.length > 0) out.warnings = [...(rec.warnings ?? []), ...failures.map((x) => `teardown: ${x}`)];
  await d.store.write(out);
  return out;
}
