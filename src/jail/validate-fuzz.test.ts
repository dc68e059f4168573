import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJailSpec } from './validate.js';
import { validateJailSpec } from './validate-host.js';
import { defaultJailerConfig } from './config.js';
import { JailError } from './errors.js';
import type { JailSpec } from './spec.js';

/** A small deterministic PRNG (mulberry32), so a failure replays from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ATOMS: unknown[] = [null, undefined, 0, -1, 3, 1.5, 2 ** 53, '', '/', '/usr', 'rel', '/a/../b', '/dev/kvm', 'x\0y', true, {}, [], [null], { type: 'ro-bind' }, { lease: true }];

function junk(r: () => number, depth = 0): unknown {
  const k = r();
  if (depth > 2 || k < 0.6) return ATOMS[Math.floor(r() * ATOMS.length)];
  if (k < 0.8) return Array.from({ length: Math.floor(r() * 3) }, () => junk(r, depth + 1));
  return Object.fromEntries(['type', 'source', 'target', 'name', 'path', 'uid', 'mode'].filter(() => r() < 0.5).map((key) => [key, junk(r, depth + 1)]));
}

const base: Record<string, unknown> = {
  name: 'j', identity: { lease: true }, network: { mode: 'none' }, mounts: [], devices: [], fds: [], env: {}, cwd: '/', argv: ['/bin/true'],
};

/** Wall time of checking one spec both ways (errors are asserted by the caller). */
function checkMs(spec: JailSpec, config: ReturnType<typeof defaultJailerConfig>): number {
  const t0 = performance.now();
  checkJailSpec(spec, config);
  try { validateJailSpec(spec, config); } catch { /* asserted by the caller */ }
  return performance.now() - t0;
}

test('fuzz: any shape of JailSpec yields issues or JAIL_INVALID_SPEC, never a crash', () => {
  const config = defaultJailerConfig();
  const r = rng(20261129);
  const fields = [...Object.keys(base), 'cgroup', 'rlimits', 'landlock'];
  for (let i = 0; i < 3000; i++) {
    const spec: Record<string, unknown> = { ...base };
    for (const f of fields) if (r() < 0.3) spec[f] = junk(r);
    const t0 = performance.now();
    assert.doesNotThrow(() => checkJailSpec(spec as unknown as JailSpec, config), `case ${i}: ${JSON.stringify(spec)}`);
    try { validateJailSpec(spec as unknown as JailSpec, config); } catch (e) {
      assert.ok(e instanceof JailError && e.code === 'JAIL_INVALID_SPEC', `case ${i}: ${String(e)}`);
    }
    // A slow case is timed twice more and the fastest counts: a really slow input is slow every
    // time, while a scheduler or GC pause on a loaded host (seen: 72 ms) is not.
    let ms = performance.now() - t0;
    for (let retry = 0; retry < 2 && ms >= 50; retry++) ms = Math.min(ms, checkMs(spec as unknown as JailSpec, config));
    assert.ok(ms < 50, `case ${i} is checked in well under 50 ms (fastest of up to 3 timings: ${ms.toFixed(1)} ms)`);
  }
});
