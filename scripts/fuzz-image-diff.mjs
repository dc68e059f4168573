// Differential check: replays fuzz cases against the real qemu-img and reports where both accept an
// image but disagree on a field (virtual size, backing name and format, data file, encryption, flags).
// Usage: node scripts/fuzz-image-diff.mjs [CASES [SEED]]   (default 300 cases; qemu-img is run under
// a 1 GiB address-space limit and a 10 s timeout, since a mutated header can make it allocate a lot)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fuzzCases } from '../dist/src/image/fuzz.js';
import { MemorySource } from '../dist/src/image/memory.js';
import { readImageInfo, ImageError } from '../dist/src/image/index.js';
import { fromQemu, fuzzSeeds } from '../dist/src/image/testing.js';

const cases = Number(process.argv[2] ?? 300);
const seed = Number(process.argv[3] ?? 11);
const dir = mkdtempSync('/tmp/warden-image-diff-');
const tally = { both: 0, agree: 0, oursOnly: 0, qemuOnly: 0, neither: 0 };
const disagreements = [];
try {
  for (const c of fuzzCases(fuzzSeeds(), cases, seed)) {
    if (c.format === 'dmg') continue; // QEMU probes dmg by name; the file name here is neutral
    const bytes = c.mutant.materialize();
    const path = `${dir}/case`;
    writeFileSync(path, bytes);
    let ours = null;
    let oursErr = '';
    try { ours = await readImageInfo(new MemorySource(bytes), c.format); } catch (e) { if (!(e instanceof ImageError)) throw e; oursErr = `${e.code}: ${e.message}`; }
    let theirs = null;
    let qemuErr = '';
    try {
      const fmt = c.format === null ? '' : `-f ${c.format}`;
      const out = execFileSync('sh', ['-c', `ulimit -v 1048576; exec qemu-img info --output=json ${fmt} "$0"`, path], { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'] });
      theirs = fromQemu(JSON.parse(out));
    } catch (e) { qemuErr = String(e.stderr ?? e.message).trim().split('\n').pop(); /* refused, crashed or timed out */ }
    if (ours && theirs) {
      tally.both++;
      const mine = { format: ours.format, virtualSize: ours.virtualSize, backingFilename: ours.backingFilename, backingFormat: ours.backingFormat, encrypted: ours.encrypted, dataFile: ours.dataFile, dirty: ours.dirty, corrupt: ours.corrupt };
      const diff = Object.keys(mine).filter((k) => JSON.stringify(mine[k]) !== JSON.stringify(theirs[k]));
      if (diff.length === 0) tally.agree++;
      else disagreements.push({ caseNo: c.caseNo, seed: c.seed.name, format: c.format, fields: diff.map((k) => `${k}: ours ${JSON.stringify(mine[k])} qemu ${JSON.stringify(theirs[k])}`) });
    } else if (ours) { tally.oursOnly++; if (process.env.VERBOSE) console.log(`ours only: case ${c.caseNo} ${c.seed.name} as ${c.format}: ${qemuErr}`); }
    else if (theirs) { tally.qemuOnly++; if (process.env.VERBOSE) console.log(`qemu only: case ${c.caseNo} ${c.seed.name} as ${c.format}: ${oursErr}`); }
    else tally.neither++;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`fuzz-image-diff: ${JSON.stringify(tally)}`);
for (const d of disagreements.slice(0, 40)) console.log(`  case ${d.caseNo} (${d.seed} as ${d.format ?? 'probed'}): ${d.fields.join('; ')}`);
process.exit(disagreements.length === 0 ? 0 : 1);
