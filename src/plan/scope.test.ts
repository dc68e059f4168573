/** @module plan/scope.test: a state root's id in the facts renames every host-wide name of the plan (jail, cgroup, helper jails, TAP devices) and nothing the guest sees. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSpec } from '../spec/index.js';
import type { QemuCaps } from '../qemu/index.js';
import { buildPlan, hostWideName } from './index.js';
import { sketchFacts } from './testing.js';

const QEMU = JSON.parse(readFileSync(new URL('../../../test/golden/plan/_facts/qemu-7.2.json', import.meta.url), 'utf8')) as QemuCaps;
const SPEC = `apiVersion: warden/v1
name: web1
memory: 256Mi
networks:
  - { name: net0, type: bridge, bridge: br0 }
  - { name: net1, type: macvtap, link: eth0 }
  - { name: net2, type: user }
`;

function planWith(scope?: string) {
  const spec = parseSpec(SPEC, 'web1.yaml');
  return buildPlan(spec, { ...sketchFacts('web1', QEMU), ...(scope === undefined ? {} : { scope }) });
}

const ifnames = (p: ReturnType<typeof planWith>): string[] => p.hostActions.flatMap((a) => ('ifname' in a && a.kind !== 'bridge-attach' ? [a.ifname] : []));

test('without a scope the names are the VM\'s; with one, jail, cgroup, helper jails and TAPs differ per state root', () => {
  const plain = planWith();
  const a = planWith('abcde');
  const b = planWith('fghij');
  assert.equal(plain.jail.name, 'web1');
  assert.equal(a.jail.name, 'web1-abcde');
  assert.equal(a.jail.cgroup?.name, 'web1-abcde');
  assert.equal(a.helpers[0]?.jail.name, 'web1-abcde-passt-net2');
  assert.equal(b.helpers[0]?.jail.cgroup?.name, 'web1-fghij-passt-net2');
  for (const p of [plain, a, b]) for (const n of ifnames(p)) assert.ok(n.length <= 14, `${n}: IFNAMSIZ with room for the NUL`);
  assert.equal(ifnames(a).length, 2);
  assert.deepEqual(ifnames(a).filter((n) => ifnames(b).includes(n) || ifnames(plain).includes(n)), [], 'no TAP or macvtap name shared');
  // What the guest sees (and a migration needs identical on both ends) does not change.
  const guestArgs = (p: ReturnType<typeof planWith>): string[] => p.argv.filter((x) => /mac=|"mac"|guest=/.test(x));
  assert.deepEqual(guestArgs(a), guestArgs(plain));
  assert.deepEqual(guestArgs(a), guestArgs(b));
  assert.equal(hostWideName('web1', 'abcde'), a.jail.name);
});
