/**
 * @module bench/shim: `ctr run -d` of a VM image through the warden shim until the task is
 * RUNNING (Create = plan, jail, QEMU -S; Start = cont), under a private containerd, next to
 * the cold `warden start` command of the same guest in the same run; and the shim server's
 * memory (one process serves every VM of a containerd).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { n, type Benchmark, type BenchRow } from './lib.js';
import { openManager, repoRoot, testEnv } from '../src/vm/index.js';
import { containerdSkipReason, privateContainerd, shimServerPids } from '../test/shim/containerd.js';
import { importImage, vmRootfs } from '../test/shim/image.js';

const SHIM = join(repoRoot(), 'bin', 'containerd-shim-warden-v1');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export const benchmarks: Benchmark[] = [{
  group: 'shim',
  async run(): Promise<BenchRow[] | string> {
    const skip = containerdSkipReason();
    if (skip !== undefined) return skip;
    const c = await privateContainerd();
    const rootfs = mkdtempSync(join(tmpdir(), 'wsh-bench-'));
    const env = testEnv('warden-shim-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    try {
      importImage((a) => c.ctr(a), vmRootfs(rootfs), 'warden.bench/vm:1');
      const name = `wdb-shim-${process.pid}`;
      await m.create(env.specFile({ name }));
      const shim: number[] = [];
      const cold: number[] = [];
      let rss1 = Number.NaN;
      let rss2 = Number.NaN;
      const runs = n(3, 2);
      for (let i = 0; i < runs; i++) {
        const id = `bench${i}-${process.pid}`; // VM names are host-wide (cgroups): the pid keeps parallel runs apart
        const second = `second-${process.pid}`;
        const t0 = performance.now();
        c.ctr(['run', '-d', '--runtime', SHIM, 'warden.bench/vm:1', id]);
        shim.push(performance.now() - t0);
        if (!/RUNNING/.test(c.ctr(['task', 'ls']).stdout)) throw new Error('the task is not RUNNING after ctr run -d');
        const t1 = performance.now();
        const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'bin.js'), 'start', name, '--state-dir', env.stateRoot, '--json'], { encoding: 'utf8' });
        cold.push(performance.now() - t1);
        if (r.status !== 0) throw new Error(`warden start failed: ${r.stdout}${r.stderr}`);
        await m.kill(name);
        if (i === 0) {
          rss1 = rssMiB(shimServerPids(c.address)[0]!);
          c.ctr(['run', '-d', '--runtime', SHIM, 'warden.bench/vm:1', second]);
          rss2 = rssMiB(shimServerPids(c.address)[0]!);
          c.ctr(['task', 'kill', '-s', 'SIGKILL', second]);
        }
        c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        for (const t of i === 0 ? [id, second] : [id]) {
          for (let k = 0; k < 100 && !new RegExp(`^${t}\\s+\\d+\\s+STOPPED`, 'm').test(c.ctr(['task', 'ls']).stdout); k++) await new Promise((res) => setTimeout(res, 100));
          c.ctr(['task', 'rm', t]);
          c.ctr(['c', 'rm', t]);
        }
      }
      const baseline = { name: '`warden start` command (cold process), same guest', value: median(cold) };
      return [
        { group: 'shim', name: '`ctr run -d` → RUNNING (first run spawns the shim server)', value: shim[0]!, unit: 'ms', baseline },
        { group: 'shim', name: '`ctr run -d` → RUNNING (shim server up), median', value: median(shim.slice(1)), unit: 'ms', baseline },
        { group: 'shim', name: 'shim server RSS, 1 VM', value: rss1, unit: 'MiB' },
        { group: 'shim', name: 'shim server RSS, 2 VMs (same process)', value: rss2, unit: 'MiB', baseline: { name: 'RSS with 1 VM', value: rss1 } },
      ];
    } finally {
      for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
      env.cleanup();
      await c.destroy();
      rmSync(rootfs, { recursive: true, force: true });
    }
  },
}];
