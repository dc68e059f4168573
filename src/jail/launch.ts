/** @module jail/launch: launchJail, the orchestrator: validate, lease, cgroup, spawn gated, confirm the pid, let it run. */
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NodeFs, nodeClock, type Fs } from '../sys/index.js';
import type { JailCgroup, JailSpec } from './spec.js';
import type { JailerConfig } from './config.js';
import { JailError } from './errors.js';
import { validateJailSpec } from './validate-host.js';
import { buildJailArgv, type JailArgvFacts } from './argv.js';
import { missingControllers, planCgroup, type CgroupPlan } from './cgroup-plan.js';
import { cgroupPids, createCgroup, detectCgroupLayout, killCgroup, nodeSignaller, removeCgroup, removeEmptyParents } from './cgroup-fs.js';
import { checkTools, deviceNumbers, orderedFds } from './host-facts.js';
import { LeaseStore, type JailRecord } from './lease-store.js';
import { chainFds, spawnChain, waitForStart, type SpawnedJail, type StdioTarget } from './spawn.js';
import { handleFromRecord, type JailHandle } from './handle.js';
import { reachableHelper } from './helper-path.js'; // bwrap binds the helper as the jail's uid
import { prepareIdmaps, removeIdmaps } from './idmap.js';

export interface LaunchOptions {
  /** name → an open fd in this process; the spec's i-th fd becomes fd 3+i in the program. */
  fds: ReadonlyMap<string, number>;
  /** The program's stdin, stdout, stderr as fds of this process (default: /dev/null). Avoid pipes to this process: the program must outlive it. */
  stdio?: { stdin?: StdioTarget; stdout?: StdioTarget; stderr?: StdioTarget };
  /** Where bwrap writes the exit status; default <runtimeDir>/<name>/status.jsonl (removed on teardown). */
  statusFile?: string;
  config: JailerConfig;
  /**
   * An opaque tag of whoever launches the jail (a manager's state directory, say), kept in
   * its record: teardownJail given an owner leaves a live jail of another owner alone.
   */
  owner?: string;
  /** How long the sandbox may take to start its program (default 10 s). */
  startTimeoutMs?: number;
  fs?: Fs;
  /** Called after each step, before the next; tests use it to simulate a manager crash there. */
  onStep?: (step: LaunchStep) => void | Promise<void>;
}

/**
 * leased: record written; cgroup: cgroup created; started: program found (in its cgroup),
 * waiting for the go; going: the go sent, the program's pids not yet in the record.
 */
export type LaunchStep = 'leased' | 'cgroup' | 'started' | 'going';

function requireRoot(name: string): void {
  if (process.getuid?.() === 0) return;
  throw new JailError('JAIL_NOT_ROOT', `launching jail "${name}" needs root (uid switch, cgroups)`, { context: { jail: name, uid: process.getuid?.() }, suggestions: ['run as root'] });
}

/** A leftover empty leaf from a crashed launch is removed; a populated one means the jail is alive. */
async function clearLeftovers(fs: Fs, plan: CgroupPlan, name: string): Promise<void> {
  const existing = [];
  for (const leaf of plan.leaves) if (await fs.exists(leaf)) existing.push(leaf);
  if (existing.length === 0) return;
  if ((await cgroupPids(fs, existing)).length > 0) {
    throw new JailError('JAIL_BUSY', `the cgroup of jail "${name}" still holds processes`, { context: { jail: name, leaves: existing }, suggestions: ['tear the old jail down first'] });
  }
  await removeCgroup(fs, existing, nodeClock);
}

/** Undo in reverse: kill what runs in the cgroup and remove it (only if this launch created it), drop the runtime dir, release the lease. */
async function undoLaunch(fs: Fs, store: LeaseStore, record: JailRecord, cgroupCreated: boolean): Promise<void> {
  if (cgroupCreated) {
    await killCgroup(fs, record.cgroupLeaves, nodeSignaller, nodeClock).catch(() => undefined);
    await removeCgroup(fs, record.cgroupLeaves, nodeClock).catch(() => undefined);
    await removeEmptyParents(fs, record.cgroupLeaves);
  }
  if (record.ownedRuntimeDir !== undefined) rmSync(record.ownedRuntimeDir, { recursive: true, force: true });
  try { removeIdmaps(record.name); } catch { /* the launch's own error matters more; teardownJail retries it */ }
  await store.release(record.name);
}

/** Opens the status file, builds the argv, spawns the chain and waits until the program is about to start. */
async function startChain(spec: JailSpec, options: LaunchOptions, record: JailRecord, joins: Pick<JailArgvFacts, 'cgroupProcs' | 'cgroupTasks'>, userFds: number[]): Promise<SpawnedJail> {
  const { config } = options;
  mkdirSync(dirname(record.statusFile), { recursive: true, mode: 0o700 });
  const fds = chainFds(userFds.length);
  const groups = 'groups' in spec.identity ? spec.identity.groups ?? [] : [];
  const argv = buildJailArgv(spec, { uid: record.uid, gid: record.gid, groups, helperPath: reachableHelper(config.helperPath),
    setprivPath: config.setprivPath, bwrapPath: config.bwrapPath, ...joins, ...fds, landlockRequired: config.landlockRequired });
  const wantStderr = options.stdio?.stderr ?? 'ignore';
  const stderr = wantStderr === 'ignore' ? openSync('/dev/null', 'w') : wantStderr;
  let statusFd: number;
  try {
    statusFd = openSync(record.statusFile, 'w', 0o600);
  } catch (err) {
    if (wantStderr === 'ignore') closeSync(stderr);
    throw err;
  }
  try {
    const child = spawnChain(argv, { stdin: options.stdio?.stdin ?? 'ignore', stdout: options.stdio?.stdout ?? 'ignore', stderr }, userFds, statusFd);
    return await waitForStart(child, record.statusFile, spec.name, options.startTimeoutMs ?? 10000);
  } finally {
    closeSync(statusFd);
    if (wantStderr === 'ignore') closeSync(stderr);
  }
}

/** What the inner helper's exit statuses mean (native/warden-exec.c). */
const INNER_EXIT: Record<number, string> = { 123: 'the start gate', 124: 'closing inherited fds', 125: 'setting rlimits', 126: 'applying Landlock', 127: 'exec of the program' };

/** The helper failed between the go and the exec: name the step from its status byte. */
function helperDied(name: string, status: number): never {
  throw new JailError('JAIL_LAUNCH_FAILED', `starting jail "${name}" failed at ${INNER_EXIT[status] ?? 'the exec helper (timed out)'} (status ${status}); the helper's message went to the program's stderr`,
    { context: { jail: name, helperStatus: status } });
}

/** The cgroup steps for this spec on this host; a limit whose controller is absent fails here, before anything exists. */
async function planJailCgroup(fs: Fs, config: JailerConfig, spec: JailSpec): Promise<{ cg: JailCgroup; plan: CgroupPlan }> {
  const cg = { ...(spec.cgroup ?? {}), name: spec.cgroup?.name ?? spec.name };
  const layout = await detectCgroupLayout(fs, config.mountsFile, config.cgroupVersion);
  const missing = missingControllers(layout, cg);
  if (missing.length > 0) {
    throw new JailError('JAIL_CGROUP_SETUP', `jail "${spec.name}" asks for ${missing.join(', ')} limits, which the cgroup v${layout.version} hierarchy here lacks`,
      { context: { jail: spec.name, missing, version: layout.version }, suggestions: ['enable the controller, or drop the limit from the spec'] });
  }
  return { cg, plan: planCgroup(layout, config.cgroupParent, cg, deviceNumbers(spec)) };
}

/**
 * How the helper joins the leaves: on v1 it writes "0" to each tasks file (itself, a single
 * thread), which the kernel does without its global threadgroup lock, whose write side waits
 * for an RCU grace period on every cgroup.procs write (0-16 ms on the development host, once
 * per launch); on v2 (one leaf) it writes its pid to cgroup.procs.
 */
export function cgroupJoins(plan: CgroupPlan): Pick<JailArgvFacts, 'cgroupProcs' | 'cgroupTasks'> {
  return plan.version === 1 ? { cgroupProcs: [], cgroupTasks: plan.leaves.map((l) => `${l}/tasks`) } : { cgroupProcs: plan.leaves.map((l) => `${l}/cgroup.procs`) };
}

/** Confines `spec.argv` per the spec; the program is inside its cgroup and namespaces before its first instruction. */
export async function launchJail(spec: JailSpec, options: LaunchOptions): Promise<JailHandle> {
  const { config } = options;
  const fs = options.fs ?? new NodeFs();
  validateJailSpec(spec, config);
  const userFds = orderedFds(spec, options.fds);
  requireRoot(spec.name);
  checkTools(config);
  const { cg, plan } = await planJailCgroup(fs, config, spec);
  const ownedRuntimeDir = options.statusFile === undefined ? join(config.runtimeDir, spec.name) : undefined;
  const statusFile = options.statusFile ?? join(ownedRuntimeDir!, 'status.jsonl');
  const store = new LeaseStore(config);
  const fixed = 'uid' in spec.identity ? { uid: spec.identity.uid, gid: spec.identity.gid } : undefined;
  // The record exists before any host object, so a crash at any later step is reconciled by teardownJail.
  const record = await store.acquire({ name: spec.name, cgroupName: cg.name, cgroupLeaves: plan.leaves, statusFile,
    ...(fixed === undefined ? {} : { fixed }), ...(ownedRuntimeDir === undefined ? {} : { ownedRuntimeDir }),
    ...(options.owner === undefined ? {} : { owner: options.owner }) });
  let cgroupCreated = false;
  try {
    await options.onStep?.('leased');
    await clearLeftovers(fs, plan, spec.name);
    await createCgroup(fs, plan);
    cgroupCreated = true;
    await options.onStep?.('cgroup');
    const started = await startChain(prepareIdmaps(spec, record.uid, record.gid), options, record, cgroupJoins(plan), userFds);
    if (!(await cgroupPids(fs, plan.leaves)).includes(started.program.pid)) {
      started.abort();
      throw new JailError('JAIL_LAUNCH_FAILED', `the program of jail "${spec.name}" (pid ${started.program.pid}) is not in its cgroup`, { context: { jail: spec.name, leaves: plan.leaves } });
    }
    await options.onStep?.('started');
    // One fsync'd write (the record, above), not two: the pids are volatile facts, kept without
    // a lease-file rewrite (LeaseStore.notePids) while the helper execs. A crash before they land
    // leaves a record whose cgroup holds the whole chain (the helper joined it before setpriv;
    // checked above), and teardown kills by cgroup: the running program is still found and killed.
    const pids = { holder: started.monitor, monitor: started.monitor, program: started.program };
    const exec = started.go();
    await options.onStep?.('going');
    store.notePids(record, pids);
    const failedStep = await exec;
    if (failedStep !== undefined) helperDied(spec.name, failedStep);
    return handleFromRecord({ ...record, ...pids });
  } catch (e) {
    await undoLaunch(fs, store, record, cgroupCreated);
    throw e;
  }
}
