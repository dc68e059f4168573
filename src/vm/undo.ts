/**
 * @module vm/undo: the undo journal as a typed union, and the one table that knows how to
 * undo each kind. A start step records its entry before it changes the host; teardown (in
 * this process or a later one) replays the entries in reverse through `UNDO`. Adding a
 * kind is one member here and one row in `UNDO`: the compiler refuses a kind with no row.
 */
import { rmSync } from 'node:fs';
import type { Fs } from '../sys/index.js';
import { reclaimStateDir } from './helpers-state.js';
import { isAlive, signalProc } from './proc.js';
import type { Backends } from './ports.js';
import type { ProcId } from './record.js';

/** Host changes a start makes, each with exactly the data its undo needs. */
export type UndoRecord =
  /** Host networking (TAPs, bridges, OVS ports): the net module's own undo log. */
  | { kind: 'net'; log: unknown }
  /** Listening sockets QEMU was handed (QMP, serial, VNC). */
  | { kind: 'sockets'; paths: string[] }
  /** The VM's log writer: it exits by itself once every write end closed; teardown waits, then kills. */
  | { kind: 'logd'; proc: ProcId }
  /** The jail (cgroup, uid lease, processes), owned by the VM's state directory. */
  | { kind: 'jail'; jailName: string; owner: string }
  /** A helper's jail (passt ...), one entry per helper; stopped after QEMU's (it was started before). */
  | { kind: 'helper'; jailName: string; owner: string; stateDirs?: string[] };

export type UndoKind = UndoRecord['kind'];

/** What an undo may touch. */
export interface UndoDeps {
  fs: Fs;
  backends: Backends;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitDead(fs: Fs, id: ProcId, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(fs, id)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

type Undoers = { [K in UndoKind]: (d: UndoDeps, u: Extract<UndoRecord, { kind: K }>) => Promise<void> };

/** How each kind is undone; idempotent, since a retry may run an entry twice. */
export const UNDO: Undoers = {
  net: (d, u) => d.backends.net.undo(u.log),
  sockets: async (_d, u) => { for (const p of u.paths) rmSync(p, { force: true }); },
  async logd(d, u) {
    if (await waitDead(d.fs, u.proc, 3000)) return;
    await signalProc(d.fs, u.proc, 'SIGKILL');
    await waitDead(d.fs, u.proc, 2000);
  },
  jail: (d, u) => d.backends.jail.teardown(u.jailName, u.owner === '' ? undefined : u.owner),
  async helper(d, u) {
    await d.backends.jail.teardown(u.jailName, u.owner);
    // Lent to the helper's uid for the run; root's again once the helper is gone (vm/helpers-state).
    for (const dir of u.stateDirs ?? []) reclaimStateDir(dir);
  },
};

export async function undoOne(d: UndoDeps, u: UndoRecord): Promise<void> {
  await (UNDO[u.kind] as (d: UndoDeps, u: UndoRecord) => Promise<void>)(d, u);
}

/** Reads a journal entry as stored; entries of the older `{step, data}` shape are converted. */
export function readUndo(v: unknown): UndoRecord | null {
  const o = v as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') return null;
  if (typeof o['kind'] === 'string' && o['kind'] in UNDO) return o as unknown as UndoRecord;
  const data = (o['data'] ?? {}) as Record<string, unknown>;
  switch (o['step']) {
    case 'net': return { kind: 'net', log: data['log'] };
    case 'sockets': return { kind: 'sockets', paths: (data['paths'] as string[] | undefined) ?? [] };
    case 'logd': return { kind: 'logd', proc: { pid: Number(data['pid']), startTime: Number(data['startTime']) } };
    case 'jail': return { kind: 'jail', jailName: String(data['jailName']), owner: String(data['owner'] ?? '') };
    default: return null;
  }
}
