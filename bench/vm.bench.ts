/**
 * @module bench/vm: start-to-running of a jailed VM (warm, in-process: probe, plan, fds,
 * jail, QEMU -S, QMP, cont) and of the cold `warden start` command, next to bare QEMU
 * started in the same run with the same argv and the same fds (no planning, no jail), and
 * next to QEMU launched in its jail with those fds and nothing of the manager around it.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { le, median, n, type Benchmark, type BenchRow } from './lib.js';
import { jailParentCgroup, type ParentCgroup } from './in-cgroup.js';
import { defaultJailerConfig, launchJail, teardownJail } from '../src/jail/index.js';
import { openSealedCopies } from '../src/vm/boot-fds.js';
import { SealedCopyCache } from '../src/vm/sealed-cache.js';
import { jailerConfig } from '../src/vm/jailer.js';
import { loadNative, NodeFs } from '../src/sys/index.js';
import { DirectLauncher, OpenFds, openManager, realBackends, repoRoot, testEnv, type PlanView } from '../src/vm/index.js';

const RUNS = n(11, 1);

/** Phase times of one baseline start, in ms; `total` is what the row compares; "cpu ..." keys are CPU ms. */
type Split = Record<string, number> & { total: number };

/** CPU ms a process and all its threads have run (schedstat: ns on a CPU, exact where clock ticks are 10 ms). */
export function taskCpuMs(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).reduce((sum, tid) => sum + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6, 0);
  } catch { return Number.NaN; }
}

/** Resolves once `pid` has exited (and been reaped), within 10 s. */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    try { process.kill(pid, 0); } catch { return; }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`bare QEMU ${pid} did not exit after SIGKILL`);
}

/** CPU ms this process used since `from` (process.cpuUsage()). */
const selfCpuMs = (from: NodeJS.CpuUsage): number => { const d = process.cpuUsage(from); return (d.user + d.system) / 1000; };

/** Bare QEMU: the planned argv and fds, spawned directly; ms until QMP reports running after cont. */
export async function bareStart(plan: PlanView, qmpSocket: string, stateRoot: string, place: <T>(start: () => T) => T = (start) => start()): Promise<number> {
  return (await bareStartSplit(plan, qmpSocket, stateRoot, place)).total;
}

/**
 * bareStart with its phases: open (sealed copies, files), spawn, greeting (QEMU's start-up),
 * cont. With `copies`, the boot files' sealed copies are reused from it as a long-lived
 * manager reuses them (vm/sealed-cache): each start still opens and checks the files.
 */
export async function bareStartSplit(plan: PlanView, qmpSocket: string, stateRoot: string, place: <T>(start: () => T) => T = (start) => start(), copies?: SealedCopyCache): Promise<Split> {
  const fds = new OpenFds();
  const launcher = new DirectLauncher();
  const backends = realBackends({ stateRoot, jail: false });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  // Boot files arrive as sealed memfds filled here (src/vm/boot-fds), as a start's first copy does.
  for (const [name, fd] of openSealedCopies(plan.fds, 'bench', loadNative(), null, copies)) fds.adopt(name, fd);
  await fds.openAll(plan.fds, 'bench');
  const t1 = performance.now();
  const l = await place(() => launcher.launch(plan.jail, fds.byName, 2, join(stateRoot, 'bare.status'), stateRoot)); // spawns before its first await
  const t2 = performance.now();
  await fds.close(false);
  const q = await backends.qmpConnect(qmpSocket, 10_000);
  const t3 = performance.now();
  await q.execute('cont');
  const st = (await q.execute('query-status')) as { status: string };
  const t4 = performance.now();
  const cpu = { 'cpu self': selfCpuMs(c0), 'cpu QEMU': taskCpuMs(l.pid) };
  if (st.status !== 'running') throw new Error(`bare QEMU is ${st.status}`);
  await q.close();
  process.kill(l.pid, 'SIGKILL');
  await launcher.teardown(plan.jail.name);
  await gone(l.pid); // its image locks go with it: the next start of the same disks must not race them
  await fds.close(true);
  return { total: t4 - t0, open: t1 - t0, spawn: t2 - t1, greeting: t3 - t2, cont: t4 - t3, ...cpu };
}

/**
 * QEMU in its jail and nothing of the manager: the same argv and fds (sealed copies reused from `copies`),
 * launchJail with the plan's JailSpec (uid lease, cgroups, bwrap mount view, Landlock), QMP,
 * cont. What a start costs above this is the manager's; what this costs above bare is the jail's.
 */
export async function jailOnlyStart(plan: PlanView, qmpSocket: string, stateRoot: string, copies?: SealedCopyCache): Promise<Split> {
  const fds = new OpenFds();
  const backends = realBackends({ stateRoot, jail: true });
  const config = jailerConfig();
  const fs = new NodeFs();
  const owner = join(stateRoot, 'jail-only');
  const statusFile = join(stateRoot, 'jail-only.status');
  rmSync(statusFile, { force: true });
  const split: Record<string, number> = {};
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (const [name, fd] of openSealedCopies(plan.fds, 'bench', loadNative(), null, copies)) fds.adopt(name, fd);
  await fds.openAll(plan.fds, 'bench');
  let last = performance.now();
  split['open'] = last - t0;
  const mark = (k: string): void => { const now = performance.now(); split[k] = now - last; last = now; };
  try {
    // The launch's own steps: leased (checks, lease record), cgroup, started (the chain until its helper waits), going (the go).
    const h = await launchJail({ ...plan.jail, identity: { lease: true } }, { fds: fds.byName, stdio: { stderr: 2 }, statusFile, owner, config, fs, onStep: (s) => mark(`launch ${s}`) });
    mark('launch exec');
    await fds.close(false);
    const q = await backends.qmpConnect(qmpSocket, 10_000);
    mark('greeting');
    await q.execute('cont');
    const st = (await q.execute('query-status')) as { status: string };
    mark('cont');
    split['cpu self'] = selfCpuMs(c0);
    split['cpu QEMU'] = taskCpuMs(h.pid);
    if (st.status !== 'running') throw new Error(`jailed QEMU is ${st.status}`);
    await q.close();
    return { ...split, total: last - t0 };
  } finally {
    await teardownJail(plan.jail.name, config, fs, { owner });
    await fds.close(true);
  }
}

/** Medians of each key over the splits. */
function medians(xs: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set(xs.flatMap((x) => Object.keys(x)))) out[k] = median(xs.flatMap((x) => (x[k] === undefined ? [] : [x[k]!])));
  return out;
}

export const benchmarks: Benchmark[] = [{
  group: 'vm',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-vm-bench-');
    let cg: ParentCgroup | undefined;
    const copies = new SealedCopyCache(loadNative());
    const m = openManager({ stateDir: env.stateRoot });
    const name = 'wdv-bench';
    try {
      await m.create(env.specFile({ name }));
      const warm: Split[] = [];
      const bare: Split[] = [];
      const jailOnly: Split[] = [];
      const cold: number[] = [];
      const bareInParent: Split[] = [];
      const bareReused: Split[] = [];
      // Bare QEMU once more, started in a CPU cgroup under the jails' parent (this process waits outside, as the manager does).
      cg = jailParentCgroup(defaultJailerConfig());
      await m.start(name); // warm-up: QEMU capabilities and the KVM verdict get cached
      await m.kill(name);
      const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as PlanView;
      const qmpSocket = m.store.paths(name).qmpSocket;
      for (const fd of openSealedCopies(plan.fds, 'bench', loadNative(), null, copies).values()) closeSync(fd); // the baselines' copies made once, as the warm-up start made the manager's
      const parent = cg;
      const measures: Array<() => Promise<void>> = [
        async () => {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const started = await m.start(name);
          warm.push({ ...started.run.timings, total: performance.now() - t0, 'cpu self': selfCpuMs(c0), 'cpu QEMU': taskCpuMs(started.record.run!.qemu.pid),
            ...(started.record.run?.logd === undefined ? {} : { 'cpu log writer': taskCpuMs(started.record.run.logd.pid) }) });
          await m.kill(name);
        },
        async () => { bare.push(await bareStartSplit(plan, qmpSocket, env.stateRoot)); },
        async () => { bareReused.push(await bareStartSplit(plan, qmpSocket, env.stateRoot, undefined, copies)); },
        async () => { jailOnly.push(await jailOnlyStart(plan, qmpSocket, env.stateRoot, copies)); },
        ...(parent === undefined ? [] : [async () => { bareInParent.push(await bareStartSplit(plan, qmpSocket, env.stateRoot, (start) => parent.place(start))); }]),
        async () => {
          const t1 = performance.now();
          const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'boot.cjs'), 'start', name, '--state-dir', env.stateRoot, '--json'], { encoding: 'utf8' });
          cold.push(performance.now() - t1);
          if (r.status !== 0) throw new Error(`warden start failed: ${r.stdout}${r.stderr}`);
          await m.kill(name);
        },
      ];
      // Round by round, each round in a rotated order: no measure always follows the same one (a teardown's tail, a cold process's exit).
      for (let i = 0; i < RUNS; i++) {
        for (let k = 0; k < measures.length; k++) await measures[(i + k) % measures.length]!();
      }
      const w = medians(warm);
      const b = medians(bare);
      const j = medians(jailOnly);
      const baseline = { name: 'bare QEMU, same argv and fds (-S, QMP cont)', value: b['total']! };
      const jailBase = { name: 'QEMU in its jail, same argv and fds, no manager (launchJail, QMP cont; copies reused)', value: j['total']! };
      const reusedBase = { name: 'bare QEMU, same argv and fds, sealed copies reused as the manager does', value: medians(bareReused)['total']! };
      const row = (label: string, v: number): BenchRow => ({ group: 'vm', name: label, value: v, unit: 'ms' });
      const split = (prefix: string, s: Record<string, number>): BenchRow[] => Object.entries(s)
        .filter(([k, v]) => k !== 'total' && !k.startsWith('cpu ') && v >= 0.5).map(([k, v]) => row(`  ${prefix} "${k}"`, v));
      // CPU, less sensitive to the other engineers' load than wall time: this process's (the manager's, or the baseline's launcher) and QEMU's until it runs.
      const cpu = (prefix: string, s: Record<string, number>): BenchRow[] => Object.entries(s)
        .filter(([k]) => k.startsWith('cpu ')).map(([k, v]) => ({ ...row(`  CPU, ${prefix}: ${k.slice(4)}`, v), unit: 'ms CPU' }));
      return [
        { ...row('start → running, jailed (warm, in-process)', w['total']!), baseline, goal: le(1.25) },
        ...(bareInParent.length === 0 ? [] : [{ ...row('start → running, jailed (warm, in-process)', w['total']!),
          baseline: { name: 'bare QEMU in a CPU cgroup under the jails\' parent (shared with every jail here)', value: medians(bareInParent)['total']! } }]),
        // The start reuses the boot files' sealed copies (vm/sealed-cache); bare QEMU doing the same.
        { ...row('start → running, jailed (warm, in-process)', w['total']!), baseline: reusedBase },
        // Where the ratio goes: the manager's share (start vs the jail alone) and the jail's (the jail alone vs bare).
        { ...row('start → running, jailed (warm, in-process)', w['total']!), baseline: jailBase },
        { ...row('QEMU in its jail, no manager (launchJail, QMP cont; copies reused)', j['total']!), baseline: reusedBase },
        ...split('start: step', w),
        ...split('jail alone:', j),
        ...split('bare:', b),
        ...split('bare, copies reused:', medians(bareReused)),
        ...cpu('start', w), ...cpu('jail alone', j), ...cpu('bare', b), ...cpu('bare, copies reused', medians(bareReused)),
        { ...row('`warden start` command (cold process)', median(cold)), baseline },
      ];
    } finally {
      for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
      await cg?.remove();
      copies.clear();
      env.cleanup();
    }
  },
}];
