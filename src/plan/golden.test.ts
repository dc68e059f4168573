/** Golden tests: one folder per case under test/golden/plan (spec.yaml + facts.json → plan.txt, plan.json); UPDATE_GOLDEN=1 rewrites. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSpec, resolveSpecPaths } from '../spec/index.js';
import type { QemuCaps } from '../qemu/index.js';
import { buildPlan, planToJson, renderPlan } from './index.js';
// Test-only: the jailer's own pure validator as the oracle for the planned JailSpec.
import { checkJailSpec, defaultJailerConfig } from '../jail/index.js';
import { actionIssues } from '../net/index.js';
import { sketchFacts, type FactSketch } from './testing.js';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../test/golden/plan/', import.meta.url));
const QEMU = JSON.parse(readFileSync(join(ROOT, '_facts/qemu-7.2.json'), 'utf8')) as QemuCaps;
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

function compare(file: string, actual: string): void {
  if (UPDATE || !existsSync(file)) { writeFileSync(file, actual); return; }
  assert.equal(actual, readFileSync(file, 'utf8'), `${file} differs (UPDATE_GOLDEN=1 regenerates; review the diff)`);
}

const cases = readdirSync(ROOT).filter((d) => !d.startsWith('_')).sort();

test('there are golden cases', () => { assert.ok(cases.length >= 15, `only ${cases.length} cases`); });

for (const name of cases) {
  test(`golden plan: ${name}`, () => {
    const dir = join(ROOT, name);
    const spec = resolveSpecPaths(parseSpec(readFileSync(join(dir, 'spec.yaml'), 'utf8'), `${name}/spec.yaml`), '/srv/vms');
    const sketch = JSON.parse(readFileSync(join(dir, 'facts.json'), 'utf8')) as FactSketch;
    const plan = buildPlan(spec, sketchFacts(spec.name, QEMU, sketch));
    compare(join(dir, 'plan.txt'), `${renderPlan(plan)}\n`);
    compare(join(dir, 'plan.json'), `${JSON.stringify(planToJson(plan), null, 2)}\n`);
    // Invariants every plan keeps, checked here so a regenerated golden cannot hide them.
    assert.deepEqual(plan.jail.argv, plan.argv);
    assert.deepEqual(plan.jail.fds, plan.fds.map((f) => ({ name: f.name, target: f.target })));
    plan.fds.forEach((f, i) => assert.equal(f.target, 3 + i));
    assert.equal(plan.argvTrace.length, plan.argv.length);
    assert.deepEqual(checkJailSpec(plan.jail, defaultJailerConfig()), [], 'the jailer accepts the planned JailSpec');
    for (const h of plan.helpers) assert.deepEqual(checkJailSpec(h.jail, defaultJailerConfig()), [], `the jailer accepts helper ${h.jail.name}'s JailSpec`);
    assert.deepEqual(actionIssues(plan.hostActions, spec.name), [], 'the net module accepts the planned host actions');
    for (const f of plan.fds) if ((f.kind === 'file' || f.kind === 'log') && f.fdset !== undefined) assert.ok(plan.argv.includes(`fd=${f.target},set=${f.fdset},opaque=${f.name}`));
  });
}
