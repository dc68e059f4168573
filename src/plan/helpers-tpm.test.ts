/** The TPM's plan beyond the goldens: refusal without swtpm, the two forms of `tpm`, and one fd pair shared by QEMU and swtpm. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSpec } from '../spec/index.js';
import type { QemuCaps } from '../qemu/index.js';
import { PlanError, buildPlan } from './index.js';
import { sketchFacts, type FactSketch } from './testing.js';

const QEMU = JSON.parse(readFileSync(new URL('../../../test/golden/plan/_facts/qemu-7.2.json', import.meta.url), 'utf8')) as QemuCaps;

function plan(yaml: string, sketch: FactSketch = {}) {
  const spec = parseSpec(`apiVersion: warden/v1\nname: t\n${yaml}`, 't.yaml');
  return buildPlan(spec, sketchFacts(spec.name, QEMU, sketch));
}

test('tpm without swtpm on the host is refused at the tpm field; tpm: false plans nothing', () => {
  assert.throws(() => plan('tpm: true', { swtpm: null }), (e: unknown) => e instanceof PlanError && e.issues.length === 1 && e.issues[0]!.from === 'tpm' && e.issues[0]!.code === 'PLAN_MISSING_FACT' && /swtpm/.test(e.issues[0]!.suggestion ?? ''));
  const none = plan('tpm: false', { swtpm: null });
  assert.equal(none.helpers.length, 0);
  assert.ok(!none.argv.includes('-tpmdev'));
});

test('tpm: true and { version: 2.0 } plan the same; QEMU\'s chardev and swtpm\'s ctrl are the two ends of one pair; the state is reached by fd only', () => {
  const a = plan('tpm: true');
  assert.deepEqual(plan("tpm: { version: '2.0' }"), a);
  assert.throws(() => parseSpec("apiVersion: warden/v1\nname: t\ntpm: { version: '1.2' }\n", 't.yaml'));
  const h = a.helpers.find((x) => x.kind === 'swtpm')!;
  const qemuEnd = a.fds.find((f) => f.kind === 'socketpair')!;
  const helperEnd = h.fds.find((f) => f.kind === 'socketpair')!;
  assert.equal(qemuEnd.kind === 'socketpair' && helperEnd.kind === 'socketpair' && qemuEnd.pair === helperEnd.pair, true);
  assert.ok(a.argv.includes(`socket,id=chrtpm,fd=${qemuEnd.target}`));
  assert.ok(h.jail.argv.includes(`type=unixio,clientfd=${helperEnd.target}`));
  const dir = h.fds.find((f) => f.kind === 'state-dir')!;
  assert.ok(h.jail.argv.includes(`dir=/proc/self/fd/${dir.target},mode=0600`));
  assert.deepEqual(h.jail.fds, h.fds.map((f) => ({ name: f.name, target: f.target })));
  assert.equal(h.jail.network.mode, 'none');
  assert.deepEqual(h.jail.identity, { lease: true });
  assert.ok(!h.jail.mounts.some((m) => 'source' in m && m.source.startsWith('/run/warden')), 'the state directory is not mounted');
  assert.deepEqual(h.jail.landlock, { readOnly: ['/usr'], readWrite: [`/proc/self/fd/${dir.target}`] }, 'Landlock: writes only beneath the state directory');
  assert.ok(a.manifest.some((m) => m.kind === 'file' && m.resource === '/run/warden/vms/t/tpm'));
});
