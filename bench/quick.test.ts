/**
 * Runs every benchmark in quick mode (few iterations, small scales), as CI does, so that a
 * benchmark whose code broke fails the suite. Asserts the shape of the report, never a number.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './lib.js';

const RUN = fileURLToPath(new URL('./run.js', import.meta.url));

/** The issue's table: each row's group and a piece of its name; each must be measured with its goal, or its group skipped. */
const ISSUE_ROWS: Array<[string, string]> = [
  ['image', 'walkChain'], ['jail', 'until the program has exec'], ['vm', 'start → running'], ['qmp', 'sequential round trip'],
  ['qmp', 'pipelined'], ['net', 'Linux bridge'], ['cli', '--version'], ['cli', 'list'], ['cli', 'validate'],
];

test('npm run bench --quick: every group runs or says why it skipped, and the issue rows carry their goals', { timeout: 600_000 }, () => {
  // spawnSync blocks the event loop, so the test's own timeout cannot fire: the child gets a bound of its own.
  const r = spawnSync(process.execPath, [RUN, '--quick', '--json'], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 540_000, killSignal: 'SIGKILL' });
  assert.equal(r.signal, null, `the quick benchmarks did not finish within 540 s:\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as { rows: Array<BenchRow & { met?: boolean }>; skipped: string[]; failed: string[] };
  assert.deepEqual(report.failed, [], `benchmarks failed:\n${report.failed.join('\n')}\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  for (const row of report.rows) {
    assert.ok(Number.isFinite(row.value), `${row.group} / ${row.name}: value ${row.value}`);
    if (row.baseline !== undefined) assert.ok(Number.isFinite(row.baseline.value) && row.baseline.value > 0, `${row.group} / ${row.name}: baseline ${row.baseline.value}`);
  }
  for (const [group, piece] of ISSUE_ROWS) {
    if (report.skipped.some((s) => s.startsWith(group) && s.includes(': skipped'))) { console.log(`# ${group}: ${report.skipped.find((s) => s.startsWith(group))}`); continue; }
    const row = report.rows.find((x) => x.group === group && x.name.includes(piece));
    assert.ok(row !== undefined, `no row "${piece}" in group ${group}`);
    assert.ok(row.goal !== undefined, `row "${row.name}" has no goal`);
  }
});
