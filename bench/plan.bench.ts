/** @module bench/plan: spec parsing, planning (with and without the QAPI check) and QEMU capability loading (probe vs cache). */
import { existsSync, mkdtempSync, readFileSync, rmSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Benchmark } from './lib.js';
import { medianMs } from './lib.js';
import { parseSpec, resolveSpecPaths } from '../src/spec/index.js';
import { buildPlan } from '../src/plan/index.js';
import { sketchFacts, type FactSketch } from '../src/plan/testing.js';
import { loadQemuCaps, probeQemu, type QemuCaps } from '../src/qemu/index.js';
import { NodeFs, NodeProcessRunner } from '../src/sys/index.js';
import { fileURLToPath } from 'node:url';

const GOLDEN = fileURLToPath(new URL('../../test/golden/plan/', import.meta.url));
const QEMU = '/usr/bin/qemu-system-x86_64';

export const benchmarks: Benchmark[] = [
  {
    group: 'spec',
    async run() {
      const text = readFileSync(join(GOLDEN, 'full/spec.yaml'), 'utf8');
      const yamlOnly = await medianMs(() => { for (let i = 0; i < 100; i++) parseYaml(text); });
      const full = await medianMs(() => { for (let i = 0; i < 100; i++) parseSpec(text, 'full.yaml'); });
      return [{ group: 'spec', name: 'parse+validate full example (per spec)', value: full / 100, unit: 'ms', baseline: { name: 'YAML parse only', value: yamlOnly / 100 } }];
    },
  },
  {
    group: 'plan',
    async run() {
      const qemu = JSON.parse(readFileSync(join(GOLDEN, '_facts/qemu-7.2.json'), 'utf8')) as QemuCaps;
      const spec = resolveSpecPaths(parseSpec(readFileSync(join(GOLDEN, 'full/spec.yaml'), 'utf8'), 'full.yaml'), '/srv/vms');
      const sketch = JSON.parse(readFileSync(join(GOLDEN, 'full/facts.json'), 'utf8')) as FactSketch;
      const withSchema = sketchFacts(spec.name, qemu, sketch);
      const { schema: _unused, ...noSchemaQemu } = qemu;
      const noSchema = sketchFacts(spec.name, noSchemaQemu, sketch);
      const a = await medianMs(() => { for (let i = 0; i < 50; i++) buildPlan(spec, withSchema); });
      const b = await medianMs(() => { for (let i = 0; i < 50; i++) buildPlan(spec, noSchema); });
      return [{ group: 'plan', name: 'buildPlan full example with QAPI check', value: a / 50, unit: 'ms', baseline: { name: 'without QAPI check', value: b / 50 } }];
    },
  },
  {
    group: 'qemu-caps',
    async run() {
      if (!existsSync(QEMU)) return 'qemu-system-x86_64 missing';
      const dir = mkdtempSync('/tmp/warden-plan-bench-');
      try {
        const runner = new NodeProcessRunner();
        const src = { runner, fs: new NodeFs(), stat: (p: string) => fsp.stat(p), cacheDir: dir };
        const probe = await medianMs(() => probeQemu(runner, QEMU), 3, 0);
        await loadQemuCaps(src, QEMU);
        const cached = await medianMs(() => loadQemuCaps(src, QEMU), 7);
        return [{ group: 'qemu-caps', name: 'load capabilities from cache', value: cached, unit: 'ms', baseline: { name: 'probe the binary', value: probe } }];
      } finally { rmSync(dir, { recursive: true, force: true }); }
    },
  },
];
