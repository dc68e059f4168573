/**
 * Mutation fuzzing of the parser and planner: from valid specs, deterministic random edits
 * (deleted, duplicated or swapped lines and characters, odd values) must end in a valid
 * spec or a SpecError with located issues, and valid ones must plan or fail with PlanError:
 * never another exception.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SpecError, parseSpec, resolveSpecPaths } from './index.js';
import { PlanError, buildPlan } from '../plan/index.js';
import { sketchFacts, type FactSketch } from '../plan/testing.js';
import type { QemuCaps } from '../qemu/index.js';
import { fileURLToPath } from 'node:url';

const GOLDEN = fileURLToPath(new URL('../../../test/golden/plan/', import.meta.url));
const QEMU = JSON.parse(readFileSync(join(GOLDEN, '_facts/qemu-7.2.json'), 'utf8')) as QemuCaps;
const seeds = readdirSync(GOLDEN).filter((d) => !d.startsWith('_')).sort().map((d) => ({
  text: readFileSync(join(GOLDEN, d, 'spec.yaml'), 'utf8'),
  facts: JSON.parse(readFileSync(join(GOLDEN, d, 'facts.json'), 'utf8')) as FactSketch,
}));

/** mulberry32: a tiny deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD = ['', '~', 'null', '-1', '0', '1e309', '"x"', '[]', '{}', '&a x', '*a', '!!binary AA==', 'true', '99999999999999999999', '52:54:00:00:00:0G', '150%', '1Gi', '\t', ':', '- a'];

function mutate(text: string, r: () => number): string {
  const lines = text.split('\n');
  const pick = (n: number) => Math.floor(r() * n);
  for (let k = 1 + pick(3); k > 0; k--) {
    const i = pick(lines.length);
    const line = lines[i] ?? '';
    switch (pick(6)) {
      case 0: lines.splice(i, 1); break;
      case 1: lines.splice(i, 0, line); break;
      case 2: { const j = pick(lines.length); lines[i] = lines[j] ?? ''; break; }
      case 3: { const c = line.indexOf(':'); lines[i] = c < 0 ? `${line} ${ODD[pick(ODD.length)]}` : `${line.slice(0, c + 1)} ${ODD[pick(ODD.length)]}`; break; }
      case 4: { const p = pick(line.length + 1); lines[i] = line.slice(0, p) + line.slice(p + 1 + pick(3)); break; }
      default: lines[i] = `${' '.repeat(pick(6))}${line.trimStart()}`;
    }
  }
  return lines.join('\n');
}

test('mutated specs end in a spec, a SpecError or a PlanError, nothing else', () => {
  const r = prng(20261129);
  let valid = 0;
  for (let n = 0; n < 600; n++) {
    const seed = seeds[n % seeds.length]!;
    const text = mutate(seed.text, r);
    try {
      const spec = resolveSpecPaths(parseSpec(text, 'fuzz.yaml'), '/srv/vms');
      valid++;
      try { buildPlan(spec, sketchFacts(spec.name, QEMU, seed.facts)); } catch (e) {
        if (!(e instanceof PlanError)) assert.fail(`buildPlan threw ${String(e)} for case ${n}:\n${text}`);
      }
    } catch (e) {
      if (!(e instanceof SpecError)) assert.fail(`parseSpec threw ${String((e as Error).stack)} for case ${n}:\n${text}`);
      assert.ok(e.issues.length > 0);
      for (const i of e.issues) assert.ok(i.line >= 1 && i.col >= 1, JSON.stringify(i));
    }
  }
  assert.ok(valid > 20, `only ${valid} mutants stayed valid: the fuzzer is not reaching the planner`);
});
