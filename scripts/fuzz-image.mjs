// Fuzzes the image prober with mutated real headers (qemu-img makes the seeds).
// Usage: npm run fuzz:image [-- CASES [SEED]]   (default 100000 cases, seed from the clock)
// Exits 1 if any case let a non-ImageError escape, read past the 64 KiB bound, or took over 50 ms.
import { runFuzz } from '../dist/src/image/fuzz.js';
import { fuzzSeeds } from '../dist/src/image/testing.js';

const cases = Number(process.argv[2] ?? 100000);
const seed = Number(process.argv[3] ?? (Date.now() % 2 ** 31));
const seeds = fuzzSeeds();
const t0 = performance.now();
const report = await runFuzz(seeds, cases, seed, 50);
const secs = (performance.now() - t0) / 1000;
console.log(`fuzz:image: ${report.cases} cases from ${seeds.length} seeds (seed ${seed}) in ${secs.toFixed(1)} s`);
console.log(`  accepted ${report.accepted}; refused: ${Object.entries(report.refusedByCode).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}`);
console.log(`  slowest case ${report.maxMs.toFixed(2)} ms (${report.over5ms} over 5 ms); most bytes read ${report.maxBytesRead}`);
for (const f of report.failures.slice(0, 20)) console.log(`  FAIL seed=${f.seed} case=${f.caseNo}: ${f.why}`);
process.exit(report.failures.length === 0 ? 0 : 1);
