/** @module bench/image: walking a 100-layer qcow2 chain with the bounded prober vs `qemu-img info --backing-chain` on the same chain, same run. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { walkChain } from '../src/image/index.js';
import { medianMs, type Benchmark, type BenchRow } from './lib.js';

const LAYERS = 100;
const CLI = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** Builds base.qcow2 ← l1 ← ... ← l99 (100 qcow2 layers) with the real qemu-img. */
function buildChain(dir: string): string {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', 'l0.qcow2', '64M'], { cwd: dir });
  for (let i = 1; i < LAYERS; i++) {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', `l${i - 1}.qcow2`, '-F', 'qcow2', `l${i}.qcow2`], { cwd: dir });
  }
  return join(dir, `l${LAYERS - 1}.qcow2`);
}

/** Bytes qemu-img read (rchar), from the shell that reaped it, less what the shell alone reads. */
function qemuImgRchar(top: string): number {
  const rchar = (cmd: string) => {
    const out = execFileSync('sh', ['-c', `${cmd}; grep '^rchar' /proc/$$/io`], { encoding: 'utf8' });
    return Number(/rchar: (\d+)/.exec(out)?.[1] ?? Number.NaN);
  };
  return rchar(`qemu-img info --backing-chain --output=json '${top}' >/dev/null`) - rchar('true');
}

function qemuImgChain(top: string): void {
  const r = spawnSync('qemu-img', ['info', '--backing-chain', '--output=json', top], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`qemu-img info --backing-chain failed on ${top}`);
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
      const ours = await medianMs(() => walkChain(top, { format: 'qcow2', maxDepth: LAYERS }), 9, 2);
      const theirs = await medianMs(() => qemuImgChain(top), 5, 1);
      const cli = await medianMs(() => spawnSync(process.execPath, [CLI, 'image', 'chain', '--json', '--max-depth', String(LAYERS), top], { stdio: 'ignore' }), 5, 1);
      const ourBytes = chain.layers.reduce((n, l) => n + l.bytesRead, 0) / LAYERS;
      const theirBytes = qemuImgRchar(top) / LAYERS;
      const baseline = { name: 'qemu-img info --backing-chain', value: theirs / LAYERS };
      return [
        { group: 'image', name: `walkChain, ${LAYERS} qcow2 layers: time per layer`, value: ours / LAYERS, unit: 'ms', baseline },
        { group: 'image', name: 'warden image chain (own node process): time per layer', value: cli / LAYERS, unit: 'ms', baseline },
        { group: 'image', name: 'header bytes read per layer', value: ourBytes, unit: 'B', baseline: { name: 'qemu-img info --backing-chain (rchar)', value: theirBytes } },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
}];
