/** Planner behaviour beyond the goldens: every PLAN_* issue, collected at once, and the pure helpers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSpec } from '../spec/index.js';
import type { QemuCaps } from '../qemu/index.js';
import { PlanError, buildPlan, stableMac, hostIfname } from './index.js';
import { sketchFacts, type FactSketch } from './testing.js';
// Test-only: the net module's own naming, which the planner's copy must equal.
import { hostIfName as netIfName, stableMac as netMac } from '../net/index.js';

const QEMU = JSON.parse(readFileSync(new URL('../../../test/golden/plan/_facts/qemu-7.2.json', import.meta.url), 'utf8')) as QemuCaps;

function plan(yaml: string, sketch: FactSketch = {}, qemu: QemuCaps = QEMU) {
  const spec = parseSpec(`apiVersion: warden/v1\nname: t\n${yaml}`, 't.yaml');
  return buildPlan(spec, sketchFacts(spec.name, qemu, sketch));
}

function planIssues(yaml: string, sketch: FactSketch = {}, qemu: QemuCaps = QEMU): Array<{ code: string; from: string }> {
  try { plan(yaml, sketch, qemu); } catch (e) {
    assert.ok(e instanceof PlanError, String(e));
    assert.match(e.code, /^PLAN_/);
    return e.issues.map((i) => ({ code: i.code, from: i.from }));
  }
  return assert.fail('expected a PlanError');
}

test('all problems are reported at once, each with its spec field', () => {
  const issues = planIssues(`accel: kvm
disks:
  - { name: a, image: /a.qcow2, format: qcow2 }
  - { name: b, image: /b.raw, format: raw }
  - { name: c, image: /c.qcow2, format: qcow2 }
`, { chains: { b: [{ path: '/b.raw', format: 'qcow2' }], c: [{ path: '/c.qcow2', format: 'qcow2', encrypted: true }] } });
  assert.deepEqual(issues, [
    { code: 'PLAN_KVM_UNUSABLE', from: 'accel' },
    { code: 'PLAN_MISSING_FACT', from: 'disks[0].image' },
    { code: 'PLAN_FORMAT_MISMATCH', from: 'disks[1].format' },
    { code: 'PLAN_ENCRYPTED', from: 'disks[2].image' },
  ]);
});

test('a backing file under a format without backing support is refused', () => {
  const issues = planIssues('disks: [{ name: a, image: /a.vdi, format: vdi }]', { chains: { a: [{ path: '/a.vdi', format: 'vdi' }, { path: '/b.raw', format: 'raw' }] } });
  assert.deepEqual(issues, [{ code: 'PLAN_UNSUPPORTED', from: 'disks[0].image' }]);
});

test('uefi without OVMF facts, vhost without /dev/vhost-net', () => {
  const issues = planIssues(`firmware: uefi
networks: [{ name: n, type: bridge, bridge: br0, vhost: true }]
`, { firmware: null, host: { vhostNet: false } });
  assert.deepEqual(issues, [{ code: 'PLAN_MISSING_FACT', from: 'firmware' }, { code: 'PLAN_UNSUPPORTED', from: 'networks[0].vhost' }]);
});

test('running out of PCI slots is a plan error, not a QEMU error', () => {
  const nets = Array.from({ length: 16 }, (_, i) => `  - { name: n${i}, type: user }`).join('\n');
  const disks = Array.from({ length: 14 }, (_, i) => `  - { name: d${i}, image: /d${i}.raw, format: raw }`).join('\n');
  const chains = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`d${i}`, [{ path: `/d${i}.raw`, format: 'raw' as const }]]));
  const issues = planIssues(`disks:\n${disks}\nnetworks:\n${nets}\n`, { chains });
  assert.equal(issues[0]?.code, 'PLAN_PCI_EXHAUSTED');
});

test('a binary whose schema lacks a planned member, or a device, fails the plan', () => {
  const noRngDevice: QemuCaps = { ...QEMU, devices: QEMU.devices.filter((d) => d !== 'virtio-rng-pci') };
  assert.deepEqual(planIssues('', {}, noRngDevice), [{ code: 'PLAN_UNSUPPORTED', from: 'rng' }]);
 // A device property the binary does not list fails the same way.
  const props = { ...QEMU.deviceProps!, 'virtio-rng-pci': QEMU.deviceProps!['virtio-rng-pci']!.filter((p) => p !== 'rng') };
  assert.deepEqual(planIssues('', {}, { ...QEMU, deviceProps: props }), [{ code: 'PLAN_QAPI', from: 'rng' }]);
  // Drop "hostfwd" from NetdevUserOptions as an older QEMU might: the object no longer fits.
  const user = QEMU.schema!.find((e) => e.name === 'netdev_add')!;
  const netdev = QEMU.schema!.find((e) => e.name === user['arg-type'])!;
  const userType = netdev.variants!.find((v) => v.case === 'user')!.type;
  const trimmed: QemuCaps = { ...QEMU, schema: QEMU.schema!.map((e) => (e.name === userType ? { ...e, members: e.members!.filter((m) => m.name !== 'hostfwd') } : e)) };
  const issues = planIssues('networks: [{ name: n, type: user, backend: slirp, forwards: [{ host: 2222, guest: 22 }] }]', {}, trimmed);
  assert.deepEqual(issues, [{ code: 'PLAN_QAPI', from: 'networks[0]' }]);
});

test('the plan is deterministic and fd numbers match the jail', () => {
  const yaml = 'networks: [{ name: a, type: bridge, bridge: br0, queues: 2 }, { name: b, type: macvtap, link: eth0 }]\n';
  const p1 = plan(yaml);
  assert.deepEqual(plan(yaml), p1);
  assert.deepEqual(p1.fds.map((f) => f.target), [3, 4, 5, 6, 7, 8]);
  assert.ok(p1.argv.includes('{"type":"tap","id":"net-a","fds":"6:7"}'));
  assert.deepEqual(p1.hostActions.map((a) => a.kind), ['tap', 'bridge-attach', 'macvtap']);
  const tapFds = p1.fds.filter((f) => f.kind === 'host-action').map((f) => f.name);
  assert.deepEqual(tapFds, ['tap-a-0', 'tap-a-1', 'tap-b-0']);
  for (const a of p1.hostActions) if ('fdNames' in a) for (const n of a.fdNames) assert.ok(p1.jail.fds.some((f) => f.name === n));
});

test('slirp keeps QEMU in the host network namespace; passt, TAP-only and NIC-less VMs get an empty one', () => {
  assert.deepEqual(plan('networks: [{ name: n, type: user, backend: slirp }]').jail.network, { mode: 'host' });
  assert.deepEqual(plan('networks: [{ name: n, type: user }]').jail.network, { mode: 'none' });
  assert.deepEqual(plan('networks: [{ name: n, type: bridge, bridge: br0 }]').jail.network, { mode: 'none' });
  assert.deepEqual(plan('').jail.network, { mode: 'none' });
});

test('user networking without passt on the host is refused unless the spec asks for slirp; restrict is slirp-only', () => {
  assert.deepEqual(planIssues('networks: [{ name: n, type: user }]', { passt: null }), [{ code: 'PLAN_MISSING_FACT', from: 'networks[0]' }]);
  assert.equal(plan('networks: [{ name: n, type: user, backend: slirp }]', { passt: null }).helpers.length, 0);
  assert.deepEqual(planIssues('networks: [{ name: n, type: user, restrict: true }]'), [{ code: 'PLAN_UNSUPPORTED', from: 'networks[0].restrict' }]);
  const p = plan('networks: [{ name: n, type: user, forwards: [{ host: 2222, guest: 22 }] }]');
  assert.equal(p.helpers.length, 1);
  const h = p.helpers[0]!;
  assert.equal(h.jail.network.mode, 'host');
  assert.deepEqual(h.jail.identity, { lease: true });
  assert.ok(h.jail.argv.includes('127.0.0.1/2222:22'));
  assert.ok(!h.jail.mounts.some((m) => m.type !== 'symlink' && m.target === '/usr'), 'passt sees its binary and libraries only');
  // host: 0 binds the port start chose (a fact), as with slirp.
  const spec0 = parseSpec('apiVersion: warden/v1\nname: t\nnetworks: [{ name: n, type: user, forwards: [{ host: 0, guest: 22 }] }]\n', 't.yaml');
  const chosen = buildPlan(spec0, { ...sketchFacts('t', QEMU), forwardPorts: { 'networks[0].forwards[0]': 40123 } });
  assert.ok(chosen.helpers[0]!.jail.argv.includes('127.0.0.1/40123:22'));
  const qemuEnd = p.fds.find((f) => f.kind === 'socketpair');
  assert.ok(p.argv.includes(`{"type":"stream","id":"net-n","addr":{"type":"fd","str":"${qemuEnd!.target}"}}`));
});

test('kvm adds exactly /dev/kvm; tcg no device', () => {
  assert.deepEqual(plan('', { kvmUsable: true }).jail.devices, ['/dev/kvm']);
  assert.deepEqual(plan('accel: tcg', { kvmUsable: true }).jail.devices, []);
});

test('stable MACs: locally administered unicast 52:54:00, distinct per NIC, same every time', () => {
  const a = stableMac('web1', 'net0');
  assert.match(a, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(stableMac('web1', 'net0'), a);
  assert.notEqual(stableMac('web1', 'net1'), a);
  assert.notEqual(stableMac('web2', 'net0'), a);
  assert.equal(hostIfname('a-very-long-vm-name-that-goes-on', 'net0').length, 14);
  assert.notEqual(hostIfname('web1', 'net0'), hostIfname('web1', 'net1'));
  assert.equal(hostIfname('web1', 'net0').slice(0, 10), hostIfname('web1', 'net1').slice(0, 10));
});

test('a writable image used twice (same dev/ino under any name) is refused; read-only sharing is fine', () => {
  const yaml = `disks:
  - { name: a, image: /a.qcow2, format: qcow2 }
  - { name: b, image: /b.qcow2, format: qcow2 }
`;
  const base = { path: '/base.qcow2', format: 'qcow2' as const, ino: 77 };
  // Two overlays over one base: fine.
  plan(yaml, { chains: { a: [{ path: '/a.qcow2', format: 'qcow2', ino: 1 }, base], b: [{ path: '/b.qcow2', format: 'qcow2', ino: 2 }, base] } });
  // b's top is a's base (hard link or a second name): a's writes would corrupt b's... and the other way round.
  const issues = planIssues(yaml, { chains: { a: [{ path: '/a.qcow2', format: 'qcow2', ino: 1 }, base], b: [{ path: '/other-name.qcow2', format: 'qcow2', ino: 77 }] } });
  assert.deepEqual(issues, [{ code: 'PLAN_SHARED_IMAGE', from: 'disks[1].image' }]);
});

test('chain facts that contradict themselves are refused', () => {
  const issues = planIssues('disks: [{ name: a, image: /a.qcow2, format: qcow2 }]', { chains: { a: [{ path: '/a.qcow2', format: 'qcow2', backingFormat: 'raw' }, { path: '/b.qcow2', format: 'qcow2' }] } });
  assert.deepEqual(issues, [{ code: 'PLAN_FORMAT_MISMATCH', from: 'disks[0].image' }]);
  const dangling = planIssues('disks: [{ name: a, image: /a.qcow2, format: qcow2 }]', { chains: { a: [{ path: '/a.qcow2', format: 'qcow2', backingFilename: 'b.qcow2' }] } });
  assert.deepEqual(dangling, [{ code: 'PLAN_BAD_FACT', from: 'disks[0].image' }]);
});

test('a QEMU without seccomp is refused', () => {
  assert.deepEqual(planIssues('', {}, { ...QEMU, sandbox: false }), [{ code: 'PLAN_UNSUPPORTED', from: '(base)' }]);
});

test('device names and MACs are exactly the net module\'s (its cleanup finds devices by name)', () => {
  for (const [vm, nic] of [['web1', 'net0'], ['a', 'b'], ['x'.repeat(63), 'nic-with-16-char']] as const) {
    assert.equal(hostIfname(vm, nic), netIfName(vm, nic));
    assert.equal(stableMac(vm, nic), netMac(vm, nic));
  }
});
