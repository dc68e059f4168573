// Differential check: replays fuzz cases against the real qemu-img and reports where both accept
// an image but disagree on a field (virtual size, backing name and format, data file, flags).
// Usage: npm run fuzz:image:qemu [-- CASES [SEED]]   (default 1000 cases; VERBOSE=1 lists one-sided refusals)
import { differential } from '../dist/src/image/differential.js';

const cases = Number(process.argv[2] ?? 1000);
const seed = Number(process.argv[3] ?? (Date.now() % 2 ** 31));
const rep = await differential(cases, seed);
console.log(`fuzz:image:qemu: seed ${seed}: ${JSON.stringify(rep.tally)}`);
if (process.env.VERBOSE) for (const line of rep.oneSided) console.log(`  ${line}`);
for (const d of rep.disagreements.slice(0, 40)) console.log(`  DISAGREE case ${d.caseNo} (${d.seed} as ${d.format}): ${d.fields.join('; ')}`);
process.exit(rep.disagreements.length === 0 ? 0 : 1);
