/**
 * @module bench/run: runs every dist/bench/*.bench.js (or the groups named on the command
 * line) and prints one table of values, same-run baselines, ratios and the issue's goals.
 * Usage: node dist/bench/run.js [--quick] [--json] [GROUP-SUBSTRING ...]
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { goalMet, setQuick, type Benchmark, type BenchRow, type Goal } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log('usage: node dist/bench/run.js [--quick] [--json] [GROUP-SUBSTRING ...]\n'
    + '  --quick  few iterations, small scales (CI runs this to catch broken benchmark code)\n'
    + '  --json   {rows, skipped, failed} on stdout\n'
    + '  GROUP    run only groups whose name contains it (image, jail, net, qmp, vm, cli, scale ...)');
  process.exit(0);
}
const json = args.includes('--json');
setQuick(args.includes('--quick'));
const names = args.filter((a) => !a.startsWith('--'));

const rows: BenchRow[] = [];
const skipped: string[] = [];
const failed: string[] = [];
for (const file of readdirSync(here).filter((f) => f.endsWith('.bench.js')).sort()) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { benchmarks?: Benchmark[] };
  for (const b of mod.benchmarks ?? []) {
    if (names.length > 0 && !names.some((n) => b.group.includes(n))) continue;
    process.stderr.write(`bench: ${b.group} ...\n`);
    try {
      const result = await b.run();
      if (typeof result === 'string') skipped.push(`${b.group}: skipped: ${result}`);
      else rows.push(...result);
    } catch (err) {
      // One broken group does not hide the others; the run still fails at the end.
      failed.push(`${b.group}: FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
  }
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));
const goalText = (g: Goal | undefined, unit: string) => (g === undefined ? '' : `${g.op} ${fmt(g.value)}${g.of === 'ratio' ? 'x' : ` ${unit}`}`);
if (json) {
  process.stdout.write(JSON.stringify({ rows: rows.map((r) => ({ ...r, met: goalMet(r) })), skipped, failed }, null, 2) + '\n');
} else {
  const table = rows.map((r) => {
    const met = goalMet(r);
    return [
      r.group, r.name, `${fmt(r.value)} ${r.unit}`,
      r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)} ${r.unit}` : '',
      r.baseline ? `${fmt(r.value / r.baseline.value)}x` : '',
      goalText(r.goal, r.unit), met === undefined ? '' : met ? 'met' : 'MISSED',
    ];
  });
  const head = ['group', 'measure', 'value', 'baseline (same run)', 'ratio', 'goal', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
  for (const s of [...skipped, ...failed]) console.log(s);
}
if (failed.length > 0) process.exitCode = 1;
