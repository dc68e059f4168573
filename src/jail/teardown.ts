/** @module jail/teardown: teardownJail (idempotent, safe after a manager crash) and attachJail for reconnection. */
import { rmSync } from 'node:fs';
import { NodeFs, nodeClock, type Fs } from '../sys/index.js';
import type { JailerConfig } from './config.js';
import { cgroupLeaves } from './cgroup-plan.js';
import { cgroupPids, detectCgroupLayout, killCgroup, nodeSignaller, removeCgroup, removeEmptyParents } from './cgroup-fs.js';
import { LeaseStore } from './lease-store.js';
import { isAlive } from './procfs.js';
import { readJailExit, type JailExit } from './status.js';
import { handleFromRecord, type JailHandle } from './handle.js';
import { removeIdmaps } from './idmap.js';

export interface TeardownResult {
  name: string;
  /** False when there was nothing left to remove. */
  found: boolean;
  /** Processes that were still running and got SIGKILL. */
  killed: number[];
  removedCgroups: string[];
  /** The program's exit as recorded before teardown, if it had ended by itself. */
  exit?: JailExit;
  /** Set when the jail was left alone because it belongs to another owner (that owner). */
  otherOwner?: string;
}

export interface TeardownOptions {
  /**
   * Tear down only a jail this owner launched: a recorded jail of the same name with another
   * owner (or none) is left untouched. Without it, the name alone decides (`warden jail rm`).
   */
  owner?: string;
}

/**
 * Kills whatever remains of jail `name`, removes its cgroups and runtime files, releases
 * its lease. Works from the persisted record alone, so it reconciles after a crash; a
 * second call finds nothing and succeeds. With `o.owner`, a jail of another owner is left
 * alone (so a launch that failed because the name was taken never tears down the holder).
 */
export async function teardownJail(name: string, config: JailerConfig, fs: Fs = new NodeFs(), o: TeardownOptions = {}): Promise<TeardownResult> {
  const store = new LeaseStore(config);
  const record = await store.get(name);
  if (o.owner !== undefined && record?.owner !== o.owner) {
    // Not ours: a jail of another owner, or cgroups with no record here (another lease store's).
    return { name, found: false, killed: [], removedCgroups: [], ...(record === undefined ? {} : { otherOwner: record.owner ?? '(none)' }) };
  }
  const leaves = record?.cgroupLeaves ?? cgroupLeaves(await detectCgroupLayout(fs, config.mountsFile, config.cgroupVersion), config.cgroupParent, name);
  const present: string[] = [];
  for (const leaf of leaves) if (await fs.exists(leaf)) present.push(leaf);
  const exit = record === undefined ? undefined : readJailExit(record.statusFile);
  const killed = await cgroupPids(fs, present);
  // The monitor and program are in the cgroup; the record also names them in case a leaf vanished early.
  for (const p of [record?.program, record?.monitor]) {
    if (p !== undefined && isAlive(p)) { killed.push(p.pid); nodeSignaller(p.pid, 'SIGKILL'); }
  }
  await killCgroup(fs, present, nodeSignaller, nodeClock);
  await removeCgroup(fs, present, nodeClock);
  await removeEmptyParents(fs, leaves);
  if (record?.ownedRuntimeDir !== undefined) rmSync(record.ownedRuntimeDir, { recursive: true, force: true });
  removeIdmaps(name); // after the kill: no process of the jail holds them any more
  if (record !== undefined) await store.release(name);
  return { name, found: record !== undefined || present.length > 0, killed: [...new Set(killed)], removedCgroups: present, ...(exit === undefined ? {} : { exit }) };
}

/** A handle on a jail started earlier (by this or another manager process), or undefined when none is recorded. */
export async function attachJail(name: string, config: JailerConfig): Promise<JailHandle | undefined> {
  const record = await new LeaseStore(config).get(name);
  return record?.program === undefined ? undefined : handleFromRecord(record);
}

/** Every recorded jail with whether its program still runs (for reconciliation at manager start). */
export async function listJails(config: JailerConfig): Promise<Array<{ name: string; uid: number; pid?: number; running: boolean }>> {
  return (await new LeaseStore(config).list()).map((r) => ({
    name: r.name, uid: r.uid, ...(r.program === undefined ? {} : { pid: r.program.pid }), running: isAlive(r.program),
  }));
}
