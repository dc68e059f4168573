/** @module image/fuzz.test: a small sample of the header fuzzer (npm run fuzz:image runs 100,000+ cases). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz.js';
import { MAX_HEADER_BYTES } from './reader.js';
import { fuzzSeeds } from './testing.js';
import { differential } from './differential.js';

test('2,000 mutated real headers: only ImageError escapes, no read passes the bound, no case is slow', async () => {
  const report = await runFuzz(fuzzSeeds(), 2000, 0x5eed, 250);
  assert.deepEqual(report.failures, []);
  assert.ok(report.maxBytesRead <= MAX_HEADER_BYTES);
  assert.ok(report.accepted > 0 && Object.keys(report.refusedByCode).length > 3, JSON.stringify(report));
});

test('differential sample: where qemu-img and the prober both accept a mutated header, every field agrees', async () => {
  const rep = await differential(150, 0xd1ff);
  assert.deepEqual(rep.disagreements, []);
  assert.ok(rep.tally.both > 50, JSON.stringify(rep.tally));
});
