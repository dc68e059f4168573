/**
 * @module net/undo-log: the serialisable record of host changes, and undoing it. The log
 * is plain JSON so a different manager process can undo after a crash; undoing is idempotent.
 */
import { loadNative } from '../sys/index.js';
import { NetError } from './errors.js';
import { LinkError, RtnlLinks, type LinkPort } from './links.js';
import { OvsdbClient, type OvsdbPort } from './ovsdb.js';
import { ovsTarget, undoText, type UndoEntry } from './steps.js';

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
  /** Host links; default: a NETLINK_ROUTE socket of the addon's, for this undo. */
  links?: LinkPort;
  /** Open vSwitch; default: the JSON-RPC client on the entry's ovsDb. */
  ovsdb?: OvsdbPort;
  ovsTimeoutSec?: number;
  /** Ignored: accepted so that callers written for the former `ip`/ovs-vsctl executor compile unchanged. */
  runner?: unknown;
}

export interface UndoFailure {
  entry: UndoEntry;
  /** What was being done (the undo's text form, as formatSteps prints it). */
  action: string;
  /** The errno name, or the ovsdb failure kind. */
  code: string | null;
  message: string;
}

type Resolved = { links: LinkPort; ovsdb: OvsdbPort; ovsTimeoutSec?: number };

/**
 * The entry's device as it is now: undefined when gone; `same` false when a device of that
 * name has another ifindex (a later start's device, not ours to touch).
 */
function identity(e: UndoEntry, links: LinkPort): { ifindex: number; same: boolean } | undefined {
  const link = links.get(e.ifname);
  if (link === undefined) return undefined;
  return { ifindex: link.ifindex, same: e.ifindex === undefined || link.ifindex === e.ifindex };
}

function undoOne(e: UndoEntry, d: Resolved): Promise<void> | void {
  if (e.kind === 'ovs-del-port') {
    // A vanished TAP leaves its OVS record behind: that goes in any case, unless another device took the name.
    const now = identity(e, d.links);
    if (now !== undefined && !now.same) return;
    return d.ovsdb.delPort(ovsTarget({ ...e, ...(d.ovsTimeoutSec === undefined ? {} : { ovsTimeoutSec: d.ovsTimeoutSec }) }), e.ifname);
  }
  const now = identity(e, d.links);
  if (now === undefined || !now.same) return; // gone (with its bridge membership), or no longer ours
  try {
    if (e.kind === 'delete-link') d.links.remove(now.ifindex);
    else d.links.set(now.ifindex, { master: 0 });
  } catch (err) {
    if (err instanceof LinkError && err.code === 'ENODEV') return; // vanished meanwhile: done
    throw err;
  }
}

/** Runs one entry's undo; returns a failure, or undefined when done (or already done, or no longer ours). */
export async function undoEntry(e: UndoEntry, deps: UndoDeps): Promise<UndoFailure | undefined> {
  const own = deps.links === undefined ? new RtnlLinks(loadNative()) : undefined;
  const ownOvs = deps.ovsdb === undefined ? new OvsdbClient() : undefined;
  try {
    await undoOne(e, { ...deps, links: deps.links ?? own!, ovsdb: deps.ovsdb ?? ownOvs! });
    return undefined;
  } catch (cause) {
    const code = (cause as { code?: unknown; kind?: unknown }).code ?? (cause as { kind?: unknown }).kind;
    return { entry: e, action: undoText(e), code: typeof code === 'string' ? code : null, message: cause instanceof Error ? cause.message : String(cause) };
  } finally {
    own?.close();
    ownOvs?.close();
  }
}

/**
 * Undoes every entry, newest first, continuing past failures; idempotent (running it
 * twice, or after the devices vanished with QEMU, is fine). Throws NET_UNDO listing what
 * could not be undone.
 */
export async function undoHostActions(log: UndoLog, deps: UndoDeps): Promise<void> {
  const own = deps.links === undefined ? new RtnlLinks(loadNative()) : undefined;
  const ownOvs = deps.ovsdb === undefined ? new OvsdbClient() : undefined;
  const d: UndoDeps = { ...deps, links: deps.links ?? own!, ovsdb: deps.ovsdb ?? ownOvs! };
  const failures: UndoFailure[] = [];
  try {
    for (const e of [...log.entries].reverse()) {
      const f = await undoEntry(e, d);
      if (f !== undefined) failures.push(f);
    }
  } finally {
    own?.close();
    ownOvs?.close();
  }
  if (failures.length === 0) return;
  const what = failures.map((f) => `${f.entry.kind} ${f.entry.ifname}`).join(', ');
  throw new NetError('NET_UNDO', `undoing host network changes left ${failures.length} behind: ${what}`, {
    context: { failures },
    suggestions: ['run "warden net cleanup VM" once the cause is fixed; it finds leftovers by their names'],
  });
}
