/** @module bench/run: runs every dist/bench/*.bench.js and prints one table of values and ratios to their baselines. */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Benchmark, BenchRow } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2);
const json = filter.includes('--json');
const names = filter.filter((a) => a !== '--json');

const rows: BenchRow[] = [];
const skipped: string[] = [];
for (const file of readdirSync(here).filter((f) => f.endsWith('.bench.js')).sort()) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { benchmarks?: Benchmark[] };
  for (const b of mod.benchmarks ?? []) {
    if (names.length > 0 && !names.some((n) => b.group.includes(n))) continue;
    process.stderr.write(`bench: ${b.group} ...\n`);
    const result = await b.run();
    if (typeof result === 'string') skipped.push(`${b.group}: skipped: ${result}`);
    else rows.push(...result);
  }
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));
if (json) {
  process.stdout.write(JSON.stringify({ rows, skipped }, null, 2) + '\n');
} else {
  const table = rows.map((r) => [
    r.group, r.name, `${fmt(r.value)} ${r.unit}`,
    r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)} ${r.unit}` : '',
    r.baseline ? `${fmt(r.value / r.baseline.value)}x` : '',
  ]);
  const head = ['group', 'measure', 'value', 'baseline (same run)', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
  for (const s of skipped) console.log(s);
}
