/** @module jail/cgroup-fs: the imperative side of cgroups over the Fs port: detect, create with limits, list, kill, remove. */
import { dirname } from 'node:path';
import type { Clock, Fs } from '../sys/index.js';
import { JailError } from './errors.js';
import { parseCgroupLayout, type CgroupLayout, type CgroupPlan, type CgroupStep } from './cgroup-plan.js';

/** Sends a signal to a host pid; a port so fake cgroup trees in tests never signal real processes. */
export type Signaller = (pid: number, signal: NodeJS.Signals) => void;

export const nodeSignaller: Signaller = (pid, signal) => {
  try { process.kill(pid, signal); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; }
};

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

export async function detectCgroupLayout(fs: Fs, mountsFile: string, prefer: 'auto' | 1 | 2 = 'auto'): Promise<CgroupLayout> {
  const text = await fs.readFile(mountsFile);
  const v2 = text.split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];
  const v2Controllers = v2 === undefined ? [] : (await fs.readFile(`${v2}/cgroup.controllers`).catch(() => '')).trim().split(/\s+/);
  const layout = parseCgroupLayout(text, () => v2Controllers, prefer);
  if (layout === undefined) {
    throw new JailError('JAIL_CGROUP_SETUP', `no ${prefer === 'auto' ? '' : `v${prefer} `}cgroup hierarchy with cpu, memory or pids found in ${mountsFile}`,
      { context: { mountsFile, prefer }, suggestions: ['mount cgroup2 (or the v1 controllers) under /sys/fs/cgroup'] });
  }
  return layout;
}

/**
 * The plan's steps cut into runs that each begin with a parents mkdir: on v1 one run per
 * hierarchy (its parent, its leaf, its limits), on v2 a single run. Runs touch disjoint
 * trees, so they may go at once; inside a run the order stays (leaf before its limits).
 */
export function independentRuns(steps: readonly CgroupStep[]): CgroupStep[][] {
  const runs: CgroupStep[][] = [];
  for (const step of steps) {
    if ((step.op === 'mkdir' && step.parents) || runs.length === 0) runs.push([step]);
    else runs[runs.length - 1]!.push(step);
  }
  return runs;
}

async function runStep(fs: Fs, step: CgroupStep, created: string[]): Promise<void> {
  if (step.op === 'mkdir') {
    if (step.parents) { await fs.mkdir(step.path, { recursive: true }); return; }
    // A teardown elsewhere may remove the (empty) parent between the two mkdirs: make it again once.
    await fs.mkdir(step.path).catch(async (e: unknown) => {
      if (errno(e) !== 'ENOENT') throw e;
      await fs.mkdir(dirname(step.path), { recursive: true });
      await fs.mkdir(step.path);
    });
    created.push(step.path);
  } else {
    if (step.ifExists === true && !(await fs.exists(step.path))) return;
    await fs.writeFile(step.path, step.value).catch((cause: unknown) => {
      throw new JailError('JAIL_CGROUP_WRITE', `writing "${step.value}" to ${step.path} failed`, { cause, context: { path: step.path, value: step.value } });
    });
  }
}

/**
 * Runs the plan's steps (its hierarchies at once, see independentRuns); on any failure waits
 * for the other runs to stop, removes the leaves it created and throws JAIL_CGROUP_WRITE.
 */
export async function createCgroup(fs: Fs, plan: CgroupPlan): Promise<void> {
  const created: string[] = [];
  try {
    const results = await Promise.allSettled(independentRuns(plan.steps).map(async (run) => { for (const step of run) await runStep(fs, step, created); }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  } catch (e) {
    for (const dir of created.reverse()) await fs.rmdir(dir).catch(() => undefined);
    if (e instanceof JailError) throw e;
    const busy = errno(e) === 'EEXIST';
    throw new JailError(busy ? 'JAIL_BUSY' : 'JAIL_CGROUP_WRITE',
      busy ? `the jail's cgroup already exists (${plan.leaves.join(', ')})` : `creating the jail's cgroup failed`,
      { cause: e, context: { leaves: plan.leaves }, ...(busy ? { suggestions: ['tear the old jail down first (teardownJail)'] } : {}) });
  }
}

/** Host pids in any of the leaves (missing leaves count as empty). */
export async function cgroupPids(fs: Fs, leaves: string[]): Promise<number[]> {
  const pids = new Set<number>();
  const texts = await Promise.all(leaves.map((leaf) => fs.readFile(`${leaf}/cgroup.procs`).catch((e: unknown) => { if (errno(e) === 'ENOENT') return ''; throw e; })));
  for (const text of texts) for (const line of text.split('\n')) if (line.trim() !== '') pids.add(Number(line));
  return [...pids];
}

/** SIGKILLs everything in the leaves until they are empty (a fork loop is bounded by pids.max, so this converges). */
export async function killCgroup(fs: Fs, leaves: string[], signal: Signaller, clock: Clock, timeoutMs = 5000): Promise<void> {
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    const pids = await cgroupPids(fs, leaves);
    if (pids.length === 0) return;
    if (clock.now() > deadline) {
      throw new JailError('JAIL_TEARDOWN_FAILED', `processes survive SIGKILL in ${leaves.join(', ')}`, { context: { leaves, pids } });
    }
    for (const leaf of leaves) if (await fs.exists(`${leaf}/cgroup.kill`)) await fs.writeFile(`${leaf}/cgroup.kill`, '1').catch(() => undefined);
    for (const pid of pids) signal(pid, 'SIGKILL');
    await clock.sleep(10);
  }
}

/** Removes the leaves; a missing leaf is fine, a busy one is retried briefly (exiting tasks linger a moment). */
export async function removeCgroup(fs: Fs, leaves: string[], clock: Clock): Promise<void> {
  for (const leaf of leaves) {
    for (let attempt = 0; ; attempt++) {
      try { await fs.rmdir(leaf); break; } catch (e) {
        if (errno(e) === 'ENOENT') break;
        if (errno(e) === 'EBUSY' && attempt < 100) { await clock.sleep(10); continue; }
        throw new JailError('JAIL_TEARDOWN_FAILED', `removing cgroup ${leaf} failed`, { cause: e, context: { leaf } });
      }
    }
  }
}

/**
 * Removes the jails' parent cgroups when they hold no jail any more (the kernel refuses
 * to remove a cgroup with children or tasks, so a live jail's parent stays), so the host
 * is left as it was once the last jail is gone. Launch makes the parent again on demand.
 */
export async function removeEmptyParents(fs: Fs, leaves: readonly string[]): Promise<void> {
  for (const parent of new Set(leaves.map((l) => dirname(l)))) await fs.rmdir(parent).catch(() => undefined);
}
