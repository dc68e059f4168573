/**
 * @module bench/scale: how costs grow with the work: start time with 1, 50 and 200 defined
 * VMs, 20 VMs started at once, `list` with 200 VMs, and the memory of warden's own
 * processes that live with each running VM (the log writer), next to QEMU's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { holdersUnder } from '../src/vm/testing.js';
import { logdPath, openManager, repoRoot, testEnv, type TestEnv } from '../src/vm/index.js';
import { median, medianMs, n, type Benchmark, type BenchRow } from './lib.js';

type Manager = ReturnType<typeof openManager>;

/** VM names reach host-wide places (cgroups, leases): this process's pid keeps them apart from another checkout's run. */
const P = `wds${process.pid}`;

/** VmRSS in KiB of a process (NaN when it is gone). */
function rssKiB(pid: number): number {
  try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN); } catch { return Number.NaN; }
}

function exeOf(pid: number): string {
  try { return readlinkSync(`/proc/${pid}/exe`); } catch { return ''; }
}

/** A fresh overlay over the env's base image, so that VMs started together claim different disks. */
function overlay(env: TestEnv, name: string): string {
  const path = join(env.dir, `${name}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', env.base, '-F', 'qcow2', path]);
  return path;
}

/** Defines VMs `prefix-i` for i in [from, to) on the shared overlay (defined only, never started together). */
async function define(m: Manager, env: TestEnv, prefix: string, from: number, to: number): Promise<void> {
  const file = env.specFile({ name: `${prefix}-0`, disk: env.overlay, memory: '64Mi' });
  for (let i = from; i < to; i++) await m.create(file, `${prefix}-${i}`);
}

async function startMs(m: Manager, name: string, runs: number): Promise<number> {
  return medianMs(async () => { await m.start(name); await m.kill(name); }, runs, 1);
}

/** Start time of one VM as the number of other defined VMs grows. */
async function startVsDefined(m: Manager, env: TestEnv): Promise<BenchRow[]> {
  await m.create(env.specFile({ name: `${P}-probe`, disk: overlay(env, `${P}-probe`), memory: '64Mi' }));
  const sizes = [1, n(50, 3), n(200, 6)];
  const rows: BenchRow[] = [];
  let defined = 1;
  let first = 0;
  for (const size of sizes) {
    await define(m, env, `${P}-idle`, defined - 1, size - 1);
    defined = size;
    const ms = await startMs(m, `${P}-probe`, n(5, 1));
    if (size === 1) first = ms;
    rows.push({ group: 'scale', name: `start → running with ${size} defined VM(s)`, value: ms, unit: 'ms',
      ...(size === 1 ? {} : { baseline: { name: 'with 1 defined VM', value: first } }) });
  }
  const cli = join(repoRoot(), 'dist', 'src', 'cli', 'boot.cjs'); // what bin/warden starts
  const inProc = await medianMs(() => m.list(), n(5, 1), 1);
  const cold = await medianMs(() => spawnSync(process.execPath, [cli, 'list', '--state-dir', m.store.root], { stdio: 'ignore' }), n(5, 1), 1);
  rows.push({ group: 'scale', name: `list with ${defined} VMs (in process)`, value: inProc, unit: 'ms' },
    { group: 'scale', name: `\`warden list\` with ${defined} VMs (cold process)`, value: cold, unit: 'ms' });
  return rows;
}

/** Starts `count` VMs at once; wall time until all run, and per-VM memory of warden's processes and QEMU's. */
async function concurrent(m: Manager, env: TestEnv, single: number): Promise<BenchRow[]> {
  const count = n(20, 2);
  const names = Array.from({ length: count }, (_, i) => `${P}-con-${i}`);
  for (const name of names) await m.create(env.specFile({ name, disk: overlay(env, name), memory: '64Mi' }));
  const t0 = performance.now();
  const started = await Promise.all(names.map((name) => m.start(name)));
  const wall = performance.now() - t0;
  try {
    const vmsDir = realpathSync(join(m.store.root, 'vms'));
    const logd = realpathSync(logdPath());
    const holders = new Set(holdersUnder(vmsDir).map(([pid]) => pid));
    const logdKiB = [...holders].filter((pid) => exeOf(pid) === logd).reduce((s, pid) => s + rssKiB(pid), 0) / count;
    const qemuKiB = median(started.map((s) => rssKiB(s.record.run!.qemu.pid)));
    return [
      { group: 'scale', name: `${count} VMs started at once: wall time until all run`, value: wall, unit: 'ms', baseline: { name: 'one VM alone', value: single } },
      { group: 'scale', name: 'warden processes living with each running VM (log writer), VmRSS per VM', value: logdKiB, unit: 'KiB',
        baseline: { name: 'QEMU itself (TCG, -m 64M, median)', value: qemuKiB } },
    ];
  } finally {
    await Promise.all(names.map((name) => m.kill(name).catch(() => undefined)));
  }
}

export const benchmarks: Benchmark[] = [{
  group: 'scale',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-scale-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    try {
      const rows = await startVsDefined(m, env);
      return [...rows, ...(await concurrent(m, env, rows[0]!.value))];
    } finally {
      for (const name of await m.store.list()) await m.kill(name).catch(() => undefined);
      env.cleanup();
    }
  },
}];
