/**
 * @module net/undo-log: the serialisable record of host changes, and undoing it. The log
 * is plain JSON so a different manager process can undo after a crash; undoing is idempotent.
 */
import type { ProcessRunner } from '../sys/index.js';
import { NetError } from './errors.js';
import { identityArgv, undoArgv, type UndoEntry } from './steps.js';

export interface UndoLog {
  version: 1;
  /** In the order the changes were made; undone in reverse. */
  entries: UndoEntry[];
}

export function emptyUndoLog(): UndoLog {
  return { version: 1, entries: [] };
}

export function serializeUndoLog(log: UndoLog): string {
  return JSON.stringify(log);
}

const STR = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function isEntry(e: unknown): e is UndoEntry {
  if (typeof e !== 'object' || e === null) return false;
  const r = e as Record<string, unknown>;
  if (!STR(r['nic']) || !STR(r['ifname'])) return false;
  if (r['ifindex'] !== undefined && !(Number.isInteger(r['ifindex']) && (r['ifindex'] as number) > 0)) return false;
  switch (r['kind']) {
    case 'delete-link': return r['device'] === 'tap' || r['device'] === 'macvtap';
    case 'bridge-detach': return STR(r['bridge']);
    case 'ovs-del-port': return STR(r['bridge']) && (r['ovsDb'] === undefined || STR(r['ovsDb']))
      && (r['ovsVsctl'] === undefined || STR(r['ovsVsctl']));
    default: return false;
  }
}

/** Parses a log written by serializeUndoLog; throws NET_BAD_LOG on anything else. */
export function parseUndoLog(text: string): UndoLog {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new NetError('NET_BAD_LOG', 'parsing the network undo log failed: not JSON', { cause });
  }
  return toUndoLog(value);
}

/** Checks an already-parsed value (say, a field of a VM state file) is an undo log; throws NET_BAD_LOG. */
export function toUndoLog(value: unknown): UndoLog {
  const v = value as { version?: unknown; entries?: unknown };
  if (typeof value !== 'object' || value === null || v.version !== 1 || !Array.isArray(v.entries)) {
    throw new NetError('NET_BAD_LOG', 'parsing the network undo log failed: expected {"version":1,"entries":[...]}');
  }
  const bad = v.entries.findIndex((e) => !isEntry(e));
  if (bad >= 0) throw new NetError('NET_BAD_LOG', `parsing the network undo log failed: entries[${bad}] is not an undo entry`, { context: { entry: v.entries[bad] } });
  return { version: 1, entries: v.entries as UndoEntry[] };
}

export interface UndoDeps {
  runner: ProcessRunner;
  ip?: string;
  ovsTimeoutSec?: number;
}

/** stderr of a command whose target is already gone: the undo is then done. */
const GONE_RE = /Cannot find device|does not exist|no port named|no bridge named/i;

export interface UndoFailure {
  entry: UndoEntry;
  argv: string[];
  code: number | null;
  stderr: string;
}

/**
 * Whether the entry's device is still the instance that was made: 'gone', 'same', or
 * 'replaced' (same name, other ifindex: a later start's device, not ours to touch).
 */
async function identity(e: UndoEntry, deps: UndoDeps): Promise<'gone' | 'same' | 'replaced'> {
  if (e.ifindex === undefined) return 'same';
  const r = await deps.runner.run(identityArgv(e, deps.ip === undefined ? {} : { ip: deps.ip }), { timeoutMs: 30_000 });
  if (r.code !== 0) {
    if (GONE_RE.test(r.stderr)) return 'gone';
    throw new Error(`reading the ifindex of ${e.ifname} failed: ${r.stderr.trim()}`);
  }
  return (JSON.parse(r.stdout) as Array<{ ifindex?: number }>)[0]?.ifindex === e.ifindex ? 'same' : 'replaced';
}

/** Runs one entry's undo; returns a failure, or undefined when done (or already done, or no longer ours). */
export async function undoEntry(e: UndoEntry, deps: UndoDeps): Promise<UndoFailure | undefined> {
  const argv = undoArgv(e, { ...(deps.ip === undefined ? {} : { ip: deps.ip }), ...(deps.ovsTimeoutSec === undefined ? {} : { ovsTimeoutSec: deps.ovsTimeoutSec }) });
  try {
    const who = await identity(e, deps);
    // A vanished device took its bridge membership with it; its OVS record stays and goes.
    if (who === 'replaced' || (who === 'gone' && e.kind !== 'ovs-del-port')) return undefined;
    const r = await deps.runner.run(argv, { timeoutMs: 30_000 });
    if (r.code === 0 || GONE_RE.test(r.stderr)) return undefined;
    return { entry: e, argv, code: r.code, stderr: r.stderr.trim() };
  } catch (cause) {
    return { entry: e, argv, code: null, stderr: cause instanceof Error ? cause.message : String(cause) };
  }
}

/**
 * Undoes every entry, newest first, continuing past failures; idempotent (running it
 * twice, or after the devices vanished with QEMU, is fine). Throws NET_UNDO listing what
 * could not be undone.
 */
export async function undoHostActions(log: UndoLog, deps: UndoDeps): Promise<void> {
  const failures: UndoFailure[] = [];
  for (const e of [...log.entries].reverse()) {
    const f = await undoEntry(e, deps);
    if (f !== undefined) failures.push(f);
  }
  if (failures.length === 0) return;
  const what = failures.map((f) => `${f.entry.kind} ${f.entry.ifname}`).join(', ');
  throw new NetError('NET_UNDO', `undoing host network changes left ${failures.length} behind: ${what}`, {
    context: { failures },
    suggestions: ['run "warden net cleanup VM" once the cause is fixed; it finds leftovers by their names'],
  });
}
