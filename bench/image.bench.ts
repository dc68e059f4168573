/** @module bench/image: walking a 100-layer qcow2 chain with the bounded prober vs `qemu-img info --backing-chain` on the same chain, same run. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeImage, walkChain } from '../src/image/index.js';
import { qcow2WithSnapshots } from '../src/image/fixtures.js';
import { le, median, medianMs, n, type Benchmark, type BenchRow } from './lib.js';

const LAYERS = n(100, 10);
/** What bin/warden starts: the bundle through the code cache (bin.js while the bundle is stale). */
const CLI = fileURLToPath(new URL('../src/cli/boot.cjs', import.meta.url));

/** Builds base.qcow2 ← l1 ← ... ← l99 (100 qcow2 layers) with the real qemu-img. */
function buildChain(dir: string): string {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', 'l0.qcow2', '64M'], { cwd: dir });
  for (let i = 1; i < LAYERS; i++) {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', `l${i - 1}.qcow2`, '-F', 'qcow2', `l${i}.qcow2`], { cwd: dir });
  }
  return join(dir, `l${LAYERS - 1}.qcow2`);
}

/** Bytes qemu-img info read (rchar), from the shell that reaped it, less what the shell alone reads. */
function qemuImgRchar(top: string, chain = true): number {
  const rchar = (cmd: string) => {
    const out = execFileSync('sh', ['-c', `${cmd}; grep '^rchar' /proc/$$/io`], { encoding: 'utf8' });
    return Number(/rchar: (\d+)/.exec(out)?.[1] ?? Number.NaN);
  };
  return rchar(`qemu-img info ${chain ? '--backing-chain ' : ''}--output=json '${top}' >/dev/null`) - rchar('true');
}

function qemuImgChain(top: string): void {
  const r = spawnSync('qemu-img', ['info', '--backing-chain', '--output=json', top], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`qemu-img info --backing-chain failed on ${top}`);
}

const SNAPSHOTS = n(65536, 1024);

/** A qcow2 with 65,536 internal snapshots (QEMU's limit): qemu-img info reads the whole table, the prober one window. */
async function hostileSnapshots(dir: string): Promise<BenchRow[]> {
  const path = join(dir, 'snapshots.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M']);
  writeFileSync(path, qcow2WithSnapshots(readFileSync(path), SNAPSHOTS));
  const ours = await medianMs(() => probeImage(path, { format: 'qcow2' }), 9, 2);
  const theirs = await medianMs(() => qemuImgInfo(path), 1, 0);
  const info = await probeImage(path, { format: 'qcow2' });
  return [
    { group: 'image', name: `qcow2 with ${SNAPSHOTS} snapshots: probe time`, value: ours, unit: 'ms', baseline: { name: 'qemu-img info', value: theirs } },
    { group: 'image', name: `qcow2 with ${SNAPSHOTS} snapshots: bytes read`, value: info.bytesRead, unit: 'B', baseline: { name: 'qemu-img info (rchar)', value: qemuImgRchar(path, false) } },
  ];
}

function qemuImgInfo(path: string): void {
  const r = spawnSync('qemu-img', ['info', '--output=json', path], { stdio: 'ignore', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`qemu-img info failed on ${path}`);
}

export const benchmarks: Benchmark[] = [{
  group: 'image',
  async run(): Promise<BenchRow[] | string> {
    if (spawnSync('qemu-img', ['--version']).status !== 0) return 'qemu-img not found';
    const dir = mkdtempSync('/tmp/warden-image-bench-');
    try {
      const top = buildChain(dir);
      const chain = await walkChain(top, { format: 'qcow2', maxDepth: LAYERS });
      if (chain.layers.length !== LAYERS) return `expected ${LAYERS} layers, walked ${chain.layers.length}`;
      const ours = await medianMs(() => walkChain(top, { format: 'qcow2', maxDepth: LAYERS }), 21, 3);
      // CPU of this process per walk (the walk is synchronous for regular files): what other processes' load changes least.
      const cpu: number[] = [];
      for (let i = 0; i < n(21, 2); i++) {
        const c0 = process.cpuUsage();
        await walkChain(top, { format: 'qcow2', maxDepth: LAYERS });
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / LAYERS);
      }
      const theirs = await medianMs(() => qemuImgChain(top), 5, 1);
      const cli = await medianMs(() => spawnSync(process.execPath, [CLI, 'image', 'chain', '--json', '--max-depth', String(LAYERS), top], { stdio: 'ignore' }), 5, 1);
      const ourBytes = chain.layers.reduce((n, l) => n + l.bytesRead, 0) / LAYERS;
      const theirBytes = qemuImgRchar(top) / LAYERS;
      const baseline = { name: 'qemu-img info --backing-chain', value: (theirs * 1000) / LAYERS };
      return [
        { group: 'image', name: `walkChain, ${LAYERS} qcow2 layers: time per layer`, value: (ours * 1000) / LAYERS, unit: 'us', baseline, goal: le(20, 'value') },
        { group: 'image', name: 'walkChain: user+sys CPU per layer (this process)', value: median(cpu), unit: 'us' },
        { group: 'image', name: 'warden image chain (own node process): time per layer', value: (cli * 1000) / LAYERS, unit: 'us', baseline },
        { group: 'image', name: 'header bytes read per layer', value: ourBytes, unit: 'B', baseline: { name: 'qemu-img info --backing-chain (rchar)', value: theirBytes } },
        ...(await hostileSnapshots(dir)),
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
}];
