import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeHost, linkError } from '../../test/net/fake-host.js';
import { OvsdbError } from './ovsdb.js';
import {
  applyHostActions, hostIfName, NetError, parseUndoLog, serializeUndoLog, stableMac, undoHostActions,
  type HostAction, type NetDeps, type UndoLog,
} from './index.js';

const A = hostIfName('vm1', 'net0', 'wdt');
const B = hostIfName('vm1', 'net1', 'wdt');
const nic = (n: string, ifname: string, bridge: string, ovs = false): HostAction[] => [
  { kind: 'tap', nic: n, ifname, queues: 1, vnetHdr: true, mac: stableMac('vm1', n), fdNames: [`${n}.tap0`] },
  ovs ? { kind: 'ovs-attach', nic: n, ifname, bridge, externalIds: { 'warden-vm': 'vm1' } } : { kind: 'bridge-attach', nic: n, ifname, bridge },
];
const errno = (code: string) => Object.assign(new Error(code), { code });

function deps(host: FakeHost, journal: UndoLog[] = [], openDevice: (p: string) => number = () => { throw errno('ENOENT'); }): NetDeps {
  return { ...host.ports(), native: host.native, openDevice, journal: (l) => { journal.push(JSON.parse(serializeUndoLog(l)) as UndoLog); } };
}

test('a missing second bridge fails in preflight: no TAP is created, nothing to undo', async () => {
  const host = new FakeHost();
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'nobr')], deps(host)), (e: NetError) => {
    assert.equal(e.code, 'NET_BRIDGE_MISSING');
    assert.deepEqual([e.context['bridge'], e.context['type'], e.context['rollback']], ['nobr', 'linux', 'complete']);
    assert.match(e.suggestions[0]!, /never creates bridges/);
    return true;
  });
  assert.deepEqual(host.vmLinks(), []);
  assert.ok(host.calls.every((c) => c.startsWith('get ')), `only checks ran: ${host.calls.join('; ')}`);
});

test('a late failure rolls back in reverse order, closes every fd, and empties the journal', async () => {
  const host = new FakeHost([[new RegExp(`set ${B} .*master`), linkError('RTM_NEWLINK', 'EBUSY', 'interface busy')]]);
  const journal: UndoLog[] = [];
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'br0')], deps(host, journal)), (e: NetError) => {
    assert.equal(e.code, 'NET_LINK');
    assert.equal(e.context['rollback'], 'complete');
    assert.deepEqual([e.context['errno'], e.context['detail'], e.context['set']], ['EBUSY', 'interface busy', { master: 'br0', up: true }]);
    return true;
  });
  assert.ok(host.calls.includes(`set ${A} {"address":"fe${stableMac('vm1', 'net0').slice(2)}","mtu":1500}`), `the TAP takes the bridge MTU: ${host.calls.join('; ')}`);
  assert.equal(host.openFds.size, 0, 'every TAP fd is closed');
  assert.deepEqual(host.vmLinks(), []);
  assert.deepEqual(journal.map((l) => l.entries.length), [1, 2, 3, 0], 'journalled as it grew, emptied by the rollback');
  assert.ok(journal[2]!.entries.every((e) => typeof e.ifindex === 'number'), 'every entry names the instance it made');
});

test('TUNSETIFF failure → NET_TAP_CREATE with errno; a busy name records no undo for a device that is not ours', async () => {
  const host = new FakeHost([[new RegExp(`openTap ${B}`), errno('EBUSY')]]);
  await assert.rejects(applyHostActions([...nic('net0', A, 'br0'), ...nic('net1', B, 'br0')], deps(host)), (e: NetError) => {
    assert.equal(e.code, 'NET_TAP_CREATE');
    assert.equal(e.context['errno'], 'EBUSY');
    assert.equal(e.context['ifname'], B);
    return true;
  });
  assert.ok(!host.calls.some((c) => c === `remove ${B}`), 'never deletes a device it did not create');
  assert.deepEqual(host.vmLinks(), []);
  assert.equal(host.openFds.size, 0);
});

test('an existing device with the TAP name is NET_TAP_EXISTS and nothing is touched', async () => {
  const host = new FakeHost();
  host.add(A, 'tun', true);
  await assert.rejects(applyHostActions(nic('net0', A, 'br0'), deps(host)), (e: NetError) => e.code === 'NET_TAP_EXISTS');
  assert.ok(host.calls.every((c) => c.startsWith('get ')));
  assert.ok(host.table.has(A));
});

test('a failing ovsdb add-port transaction is NET_OVS, and its undo (recorded first) still runs', async () => {
  const host = new FakeHost([[/addPort/, new OvsdbError('transaction', 'ovsdb transaction (add-port) failed: constraint violation')]]);
  await assert.rejects(applyHostActions(nic('net0', A, 'ovsbr', true), deps(host)), (e: NetError) => {
    assert.equal(e.code, 'NET_OVS');
    assert.equal(e.context['kind'], 'transaction');
    assert.match(String((e.cause as Error).message), /constraint violation/);
    return true;
  });
  assert.ok(host.calls.includes(`ovs /var/run/openvswitch/db.sock delPort ${A}`), host.calls.join('; '));
  assert.deepEqual(host.vmLinks(), []);
});

test('a bridge that is really an OVS bridge is NET_NOT_A_BRIDGE with a hint', async () => {
  const host = new FakeHost([], { ovsbr: 'openvswitch' });
  await assert.rejects(applyHostActions(nic('net0', A, 'ovsbr'), deps(host)), (e: NetError) =>
    e.code === 'NET_NOT_A_BRIDGE' && /type ovs/.test(e.suggestions[0]!));
});

test('bad actions throw NET_BAD_ACTION before any command runs', async () => {
  const host = new FakeHost();
  const bad: HostAction[] = [{ kind: 'tap', nic: 'n', ifname: 'wdt-far-too-long-name', queues: 1, vnetHdr: true, mac: 'zz', fdNames: ['a'] }];
  await assert.rejects(applyHostActions(bad, deps(host)), (e: NetError) =>
    e.code === 'NET_BAD_ACTION' && (e.context['issues'] as unknown[]).length === 2);
  assert.deepEqual(host.calls, []);
});

test('vhost: a host without /dev/vhost-net is NET_VHOST_UNAVAILABLE, and the TAP goes', async () => {
  const host = new FakeHost();
  const actions: HostAction[] = [{ kind: 'tap', nic: 'n', ifname: A, queues: 1, vnetHdr: true, mac: stableMac('vm1', 'n'), fdNames: ['t'] },
    { kind: 'vhost', nic: 'n', fdNames: ['v'] }];
  await assert.rejects(applyHostActions(actions, deps(host)), (e: NetError) => e.code === 'NET_VHOST_UNAVAILABLE' && e.context['errno'] === 'ENOENT');
  assert.equal(host.openFds.size, 0);
  assert.deepEqual(host.vmLinks(), []);
});

test('macvtap on a kernel without it is NET_MACVTAP_UNSUPPORTED', async () => {
  const host = new FakeHost([[/addMacvtap/, linkError('RTM_NEWLINK', 'EOPNOTSUPP', 'Unknown device type')]]);
  host.add('eth0', 'veth', true);
  const actions: HostAction[] = [{ kind: 'macvtap', nic: 'n', ifname: A, link: 'eth0', mode: 'bridge', mac: stableMac('vm1', 'n'), queues: 1, fdNames: ['t'] }];
  await assert.rejects(applyHostActions(actions, deps(host)), (e: NetError) => e.code === 'NET_MACVTAP_UNSUPPORTED');
  assert.ok(!host.calls.some((c) => c.startsWith('remove')), 'nothing was created, nothing is deleted');
});

test('macvtap: /dev/tap<ifindex> is opened once per queue; the undo entry learns the ifindex', async () => {
  const host = new FakeHost();
  host.add('eth0', 'veth', true);
  const opened: string[] = [];
  const actions: HostAction[] = [{ kind: 'macvtap', nic: 'n', ifname: A, link: 'eth0', mode: 'vepa', mac: stableMac('vm1', 'n'), queues: 2, fdNames: ['q0', 'q1'] }];
  const net = await applyHostActions(actions, deps(host, [], (p) => { opened.push(p); return host.openDevice(p); }));
  const ifindex = host.table.get(A)!.ifindex;
  assert.deepEqual(opened, [`/dev/tap${ifindex}`, `/dev/tap${ifindex}`]);
  assert.deepEqual([...net.fds.keys()], ['q0', 'q1']);
  assert.ok([...net.fds.values()].every((fd) => host.native.tapIfName(fd) === A));
  assert.deepEqual(net.undo.entries, [{ kind: 'delete-link', nic: 'n', ifname: A, device: 'macvtap', ifindex }]);
});

test('a stale log leaves a same-named device of a later start alone', async () => {
  const host = new FakeHost();
  const first = await applyHostActions(nic('net0', A, 'br0'), deps(host));
  for (const fd of first.fds.values()) host.native.closeFd(fd); // QEMU died: the TAP vanished
  const second = await applyHostActions(nic('net0', A, 'br0'), deps(host));
  await undoHostActions(first.undo, host.ports());
  assert.ok(host.table.has(A), 'the second instance keeps its TAP');
  assert.ok(!host.calls.some((c) => c === `remove ${A}`));
  await undoHostActions(second.undo, host.ports());
  assert.ok(!host.table.has(A));
});

test('undo tolerates devices that are already gone and reports the rest as NET_UNDO after trying all', async () => {
  const log: UndoLog = { version: 1, entries: [
    { kind: 'delete-link', nic: 'a', ifname: A, device: 'tap' },
    { kind: 'ovs-del-port', nic: 'b', ifname: B, bridge: 'ovsbr', ovsDb: '/tmp/x.sock', ifindex: 42 },
  ] };
  const gone = new FakeHost();
  await undoHostActions(log, gone.ports());
  assert.deepEqual(gone.calls, [`get ${B}`, `ovs /tmp/x.sock delPort ${B}`, `get ${A}`], 'the OVS record goes even though its device is gone');
  const broken = new FakeHost([[/ovs/, new OvsdbError('connect', 'connecting to ovsdb /tmp/x.sock failed: ENOENT')]]);
  broken.add(A, 'tun', true);
  await assert.rejects(undoHostActions(log, broken.ports()), (e: NetError) => {
    assert.equal(e.code, 'NET_UNDO');
    assert.deepEqual((e.context['failures'] as Array<{ code: string }>).map((f) => f.code), ['connect']);
    return true;
  });
  assert.ok(!broken.table.has(A), 'the link is still deleted after the OVS failure');
});

test('undo logs round-trip through JSON and garbage is NET_BAD_LOG', () => {
  const log: UndoLog = { version: 1, entries: [{ kind: 'bridge-detach', nic: 'n', ifname: A, bridge: 'br0', ifindex: 3 }] };
  assert.deepEqual(parseUndoLog(serializeUndoLog(log)), log);
  for (const bad of ['', '{}', '{"version":2,"entries":[]}', '{"version":1,"entries":[{"kind":"rm -rf"}]}',
    '{"version":1,"entries":[{"kind":"delete-link","nic":"n","ifname":"x","device":"eth"}]}',
    '{"version":1,"entries":[{"kind":"delete-link","nic":"n","ifname":"x","device":"tap","ifindex":-1}]}']) {
    assert.throws(() => parseUndoLog(bad), (e: NetError) => e.code === 'NET_BAD_LOG', bad);
  }
});

test('an empty action list (user-mode networking only) does nothing', async () => {
  const host = new FakeHost();
  const net = await applyHostActions([], deps(host));
  assert.deepEqual([net.fds.size, net.undo.entries, host.calls], [0, [], []]);
});
