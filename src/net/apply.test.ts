import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProcessRunner, RunResult } from '../sys/index.js';
import {
  applyHostActions, hostIfName, NetError, parseUndoLog, serializeUndoLog, stableMac, undoHostActions,
  type HostAction, type NetDeps, type UndoLog,
} from './index.js';

/** Fault injection: a runner answering by the first rule whose pattern matches the joined argv, recording every call. */
function scriptedRunner(rules: Array<[RegExp, Partial<RunResult> | Error]>): ProcessRunner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async run(argv) {
      const line = argv.join(' ');
      calls.push(line);
      const hit = rules.find(([re]) => re.test(line))?.[1] ?? {};
      if (hit instanceof Error) throw hit;
      return { code: 0, signal: null, stdout: '', stderr: '', ...hit };
    },
  };
}

const MISSING = { code: 1, stderr: 'Device "x" does not exist.\n' };
const BRIDGE_JSON = { stdout: JSON.stringify([{ ifname: 'br0', mtu: 1500, linkinfo: { info_kind: 'bridge' } }]) };

function fakeNative(fail?: (name: string) => NodeJS.ErrnoException | undefined) {
  let next = 100;
  const open = new Set<number>();
  return {
    open,
    openTap(name: string, queues: number) {
      const e = fail?.(name);
      if (e) throw e;
      const fds = Array.from({ length: queues }, () => next++);
      fds.forEach((fd) => open.add(fd));
      return { name, fds };
    },
    closeFd(fd: number) { open.delete(fd); },
  };
}

const A = hostIfName('vm1', 'net0', 'wdt');
const B = hostIfName('vm1', 'net1', 'wdt');
const nic = (n: string, ifname: string, bridge: string, ovs = false): HostAction[] => [
  { kind: 'tap', nic: n, ifname, queues: 1, vnetHdr: true, mac: stableMac('vm1', n), fdNames: [`${n}.tap0`] },
  ovs ? { kind: 'ovs-attach', nic: n, ifname, bridge, externalIds: { 'warden-vm': 'vm1' } } : { kind: 'bridge-attach', nic: n, ifname, bridge },
];

function deps(runner: ProcessRunner, native: ReturnType<typeof fakeNative>, journal: UndoLog[] = []): NetDeps {
  return { runner, native, openDevice: () => { throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' }); },
    journal: (l) => { journal.push(JSON.parse(serializeUndoLog(l)) as UndoLog); } };
}

test('a missing second bridge fails in preflight: no TAP is created, nothing to undo', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/show dev br0/, BRIDGE_JSON], [/show dev nobr/, MISSING]]);
  const native = fakeNative();
  let opened = 0;
  const counting = { ...native, openTap: (n: string, q: number) => { opened++; return native.openTap(n, q); } };
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'nobr')], deps(runner, counting)), (e: NetError) => {
    assert.equal(e.code, 'NET_BRIDGE_MISSING');
    assert.deepEqual([e.context['bridge'], e.context['type'], e.context['rollback']], ['nobr', 'linux', 'complete']);
    assert.match(e.suggestions[0]!, /never creates bridges/);
    return true;
  });
  assert.equal(opened, 0);
  assert.ok(runner.calls.every((c) => c.includes(' show ')), `only checks ran: ${runner.calls.join('; ')}`);
});

test('a late failure rolls back in reverse order, closes every fd, and empties the journal', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/show dev br0/, BRIDGE_JSON],
    [new RegExp(`dev ${B} master`), { code: 2, stderr: 'Error: interface busy\n' }]]);
  const native = fakeNative();
  const journal: UndoLog[] = [];
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'br0')], deps(runner, native, journal)), (e: NetError) => {
    assert.equal(e.code, 'NET_LINK');
    assert.equal(e.context['rollback'], 'complete');
    assert.deepEqual(e.context['argv'], ['ip', 'link', 'set', 'dev', B, 'master', 'br0', 'up']);
    return true;
  });
  assert.ok(runner.calls.includes(`ip link set dev ${A} address fe${stableMac('vm1', 'net0').slice(2)} mtu 1500`), 'the TAP takes the bridge MTU');
  assert.equal(native.open.size, 0, 'every TAP fd is closed');
  const undo = runner.calls.slice(runner.calls.findIndex((c) => c.includes(`dev ${B} master`)) + 1);
  assert.deepEqual(undo, [`ip link delete dev ${B}`, `ip link set dev ${A} nomaster`, `ip link delete dev ${A}`]);
  assert.deepEqual(journal.map((l) => l.entries.length), [1, 2, 3, 0], 'journalled as it grew, emptied by the rollback');
});

test('TUNSETIFF failure → NET_TAP_CREATE with errno; a busy name records no undo for a device that is not ours', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/show dev br0/, BRIDGE_JSON]]);
  const native = fakeNative((n) => (n === B ? Object.assign(new Error('TUNSETIFF: busy'), { code: 'EBUSY' }) : undefined));
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'br0')], deps(runner, native)), (e: NetError) => {
    assert.equal(e.code, 'NET_TAP_CREATE');
    assert.equal(e.context['errno'], 'EBUSY');
    assert.equal(e.context['ifname'], B);
    return true;
  });
  assert.ok(!runner.calls.includes(`ip link delete dev ${B}`), 'never deletes a device it did not create');
  assert.ok(runner.calls.includes(`ip link delete dev ${A}`));
  assert.equal(native.open.size, 0);
});

test('an existing device with the TAP name is NET_TAP_EXISTS and nothing is touched', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, { stdout: '[{}]' }]]);
  const native = fakeNative();
  await assert.rejects(applyHostActions(nic('net0', A, 'br0'), deps(runner, native)), (e: NetError) => e.code === 'NET_TAP_EXISTS');
  assert.deepEqual(runner.calls, [`ip -j link show dev ${A}`]);
});

test('a failing ovs-vsctl add-port is NET_OVS, and its undo (recorded first) still runs', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/add-port/, { code: 1, stderr: 'ovs-vsctl: transaction error' }]]);
  const native = fakeNative();
  await assert.rejects(applyHostActions(nic('net0', A, 'ovsbr', true), deps(runner, native)), (e: NetError) => {
    assert.equal(e.code, 'NET_OVS');
    assert.match(String(e.context['stderr']), /transaction error/);
    return true;
  });
  assert.ok(runner.calls.includes(`ovs-vsctl --timeout=5 -- --if-exists del-port ${A}`));
});

test('a bridge that is really an OVS bridge is NET_NOT_A_BRIDGE with a hint', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/show dev ovsbr/, { stdout: JSON.stringify([{ mtu: 1500, linkinfo: { info_kind: 'openvswitch' } }]) }]]);
  await assert.rejects(applyHostActions(nic('net0', A, 'ovsbr'), deps(runner, fakeNative())), (e: NetError) =>
    e.code === 'NET_NOT_A_BRIDGE' && /type ovs/.test(e.suggestions[0]!));
});

test('bad actions throw NET_BAD_ACTION before any command runs', async () => {
  const runner = scriptedRunner([]);
  const bad: HostAction[] = [{ kind: 'tap', nic: 'n', ifname: 'wdt-far-too-long-name', queues: 1, vnetHdr: true, mac: 'zz', fdNames: ['a'] }];
  await assert.rejects(applyHostActions(bad, deps(runner, fakeNative())), (e: NetError) =>
    e.code === 'NET_BAD_ACTION' && (e.context['issues'] as unknown[]).length === 2);
  assert.deepEqual(runner.calls, []);
});

test('vhost: a host without /dev/vhost-net is NET_VHOST_UNAVAILABLE', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING]]);
  const native = fakeNative();
  const actions: HostAction[] = [{ kind: 'tap', nic: 'n', ifname: A, queues: 1, vnetHdr: true, mac: stableMac('vm1', 'n'), fdNames: ['t'] },
    { kind: 'vhost', nic: 'n', fdNames: ['v'] }];
  await assert.rejects(applyHostActions(actions, deps(runner, native)), (e: NetError) => e.code === 'NET_VHOST_UNAVAILABLE' && e.context['errno'] === 'ENOENT');
  assert.equal(native.open.size, 0);
});

test('macvtap on a kernel without it is NET_MACVTAP_UNSUPPORTED', async () => {
  const runner = scriptedRunner([[/link show dev wdt/, MISSING], [/type macvtap/, { code: 2, stderr: 'Error: Unknown device type.\n' }]]);
  const actions: HostAction[] = [{ kind: 'macvtap', nic: 'n', ifname: A, link: 'eth0', mode: 'bridge', mac: stableMac('vm1', 'n'), queues: 1, fdNames: ['t'] }];
  await assert.rejects(applyHostActions(actions, deps(runner, fakeNative())), (e: NetError) => e.code === 'NET_MACVTAP_UNSUPPORTED');
  assert.ok(!runner.calls.some((c) => c.startsWith('ip link delete')), 'nothing was created, nothing is deleted');
});

test('macvtap: /dev/tap<ifindex> is opened once per queue after the link exists', async () => {
  const runner = scriptedRunner([[/-j link show dev wdt/, MISSING]]);
  let shown = 0;
  const r2: ProcessRunner = { run: async (argv, o) => (argv.join(' ') === `ip -j link show dev ${A}` && shown++ > 0
    ? { code: 0, signal: null, stdout: '[{"ifindex":42}]', stderr: '' } : runner.run(argv, o)) };
  const opened: string[] = [];
  const actions: HostAction[] = [{ kind: 'macvtap', nic: 'n', ifname: A, link: 'eth0', mode: 'vepa', mac: stableMac('vm1', 'n'), queues: 2, fdNames: ['q0', 'q1'] }];
  const net = await applyHostActions(actions, { runner: r2, native: fakeNative(), openDevice: (p) => { opened.push(p); return 7 + opened.length; } });
  assert.deepEqual(opened, ['/dev/tap42', '/dev/tap42']);
  assert.deepEqual([...net.fds], [['q0', 8], ['q1', 9]]);
  assert.deepEqual(net.undo.entries, [{ kind: 'delete-link', nic: 'n', ifname: A, device: 'macvtap' }]);
});

test('undo tolerates devices that are already gone and reports the rest as NET_UNDO after trying all', async () => {
  const log: UndoLog = { version: 1, entries: [
    { kind: 'delete-link', nic: 'a', ifname: A, device: 'tap' },
    { kind: 'ovs-del-port', nic: 'b', ifname: B, bridge: 'ovsbr', ovsDb: '/tmp/x.sock' },
  ] };
  const gone = scriptedRunner([[/delete/, { code: 1, stderr: 'Cannot find device "x"' }]]);
  await undoHostActions(log, { runner: gone });
  assert.deepEqual(gone.calls, [`ovs-vsctl --db=unix:/tmp/x.sock --timeout=5 -- --if-exists del-port ${B}`, `ip link delete dev ${A}`]);
  const broken = scriptedRunner([[/ovs-vsctl/, { code: 1, stderr: 'database connection failed' }]]);
  await assert.rejects(undoHostActions(log, { runner: broken }), (e: NetError) => {
    assert.equal(e.code, 'NET_UNDO');
    assert.equal((e.context['failures'] as unknown[]).length, 1);
    return true;
  });
  assert.equal(broken.calls.length, 2, 'the link is still deleted after the OVS failure');
});

test('undo logs round-trip through JSON and garbage is NET_BAD_LOG', () => {
  const log: UndoLog = { version: 1, entries: [{ kind: 'bridge-detach', nic: 'n', ifname: A, bridge: 'br0' }] };
  assert.deepEqual(parseUndoLog(serializeUndoLog(log)), log);
  for (const bad of ['', '{}', '{"version":2,"entries":[]}', '{"version":1,"entries":[{"kind":"rm -rf"}]}', '{"version":1,"entries":[{"kind":"delete-link","nic":"n","ifname":"x","device":"eth"}]}']) {
    assert.throws(() => parseUndoLog(bad), (e: NetError) => e.code === 'NET_BAD_LOG', bad);
  }
});
