/**
 * @module bench/vm: start-to-running of a jailed VM (warm, in-process: probe, plan, fds,
 * jail, QEMU -S, QMP, cont) and of the cold `warden start` command, next to bare QEMU
 * started in the same run with the same argv and the same fds (no planning, no jail).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { le, n, type Benchmark, type BenchRow } from './lib.js';
import { jailParentCgroup, type ParentCgroup } from './in-cgroup.js';
import { defaultJailerConfig } from '../src/jail/index.js';
import { openSealedCopies } from '../src/vm/boot-fds.js';
import { loadNative } from '../src/sys/index.js';
import { DirectLauncher, OpenFds, openManager, realBackends, repoRoot, testEnv, type PlanView } from '../src/vm/index.js';

const RUNS = n(5, 1);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Bare QEMU: the planned argv and fds, spawned directly; timed until QMP reports running after cont. */
export async function bareStart(plan: PlanView, qmpSocket: string, stateRoot: string, place: <T>(start: () => T) => T = (start) => start()): Promise<number> {
  const fds = new OpenFds();
  const launcher = new DirectLauncher();
  const backends = realBackends({ stateRoot, jail: false });
  const t0 = performance.now();
  // Boot files arrive as sealed memfds the manager fills (src/vm/boot-fds), as start does.
  for (const [name, fd] of openSealedCopies(plan.fds, 'bench', loadNative())) fds.adopt(name, fd);
  await fds.openAll(plan.fds, 'bench');
  const l = await place(() => launcher.launch(plan.jail, fds.byName, 2, join(stateRoot, 'bare.status'), stateRoot)); // spawns before its first await
  await fds.close(false);
  const q = await backends.qmpConnect(qmpSocket, 10_000);
  await q.execute('cont');
  const st = (await q.execute('query-status')) as { status: string };
  const ms = performance.now() - t0;
  if (st.status !== 'running') throw new Error(`bare QEMU is ${st.status}`);
  await q.close();
  process.kill(l.pid, 'SIGKILL');
  await launcher.teardown(plan.jail.name);
  await fds.close(true);
  return ms;
}

export const benchmarks: Benchmark[] = [{
  group: 'vm',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-vm-bench-');
    let cg: ParentCgroup | undefined;
    const m = openManager({ stateDir: env.stateRoot });
    const name = 'wdv-bench';
    try {
      await m.create(env.specFile({ name }));
      const warm: number[] = [];
      const bare: number[] = [];
      const cold: number[] = [];
      const bareInParent: number[] = [];
      // Bare QEMU once more, started in a CPU cgroup under the jails' parent (this process waits outside, as the manager does).
      cg = jailParentCgroup(defaultJailerConfig());
      const steps: Record<string, number[]> = {};
      await m.start(name); // warm-up: QEMU capabilities and the KVM verdict get cached
      await m.kill(name);
      const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as PlanView;
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        const started = await m.start(name);
        warm.push(performance.now() - t0);
        for (const [k, v] of Object.entries(started.run.timings)) (steps[k] ??= []).push(v);
        await m.kill(name);
        bare.push(await bareStart(plan, m.store.paths(name).qmpSocket, env.stateRoot));
        const parent = cg;
        if (parent !== undefined) bareInParent.push(await bareStart(plan, m.store.paths(name).qmpSocket, env.stateRoot, (start) => parent.place(start)));
        const t1 = performance.now();
        const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'boot.cjs'), 'start', name, '--state-dir', env.stateRoot, '--json'], { encoding: 'utf8' });
        cold.push(performance.now() - t1);
        if (r.status !== 0) throw new Error(`warden start failed: ${r.stdout}${r.stderr}`);
        await m.kill(name);
      }
      const baseline = { name: 'bare QEMU, same argv and fds (-S, QMP cont)', value: median(bare) };
      const slowest = Object.entries(steps).map(([k, v]) => [k, median(v)] as const).sort((a, b) => b[1] - a[1]).slice(0, 3);
      return [
        { group: 'vm', name: 'start → running, jailed (warm, in-process)', value: median(warm), unit: 'ms', baseline, goal: le(1.25) },
        ...(bareInParent.length === 0 ? [] : [{ group: 'vm', name: 'start → running, jailed (warm, in-process)', value: median(warm), unit: 'ms',
          baseline: { name: 'bare QEMU in a CPU cgroup under the jails\' parent (shared with every jail here)', value: median(bareInParent) } }]),
        ...slowest.map(([k, v]) => ({ group: 'vm', name: `  of which step "${k}"`, value: v, unit: 'ms' })),
        { group: 'vm', name: '`warden start` command (cold process)', value: median(cold), unit: 'ms', baseline },
      ];
    } finally {
      for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
      await cg?.remove();
      env.cleanup();
    }
  },
}];
