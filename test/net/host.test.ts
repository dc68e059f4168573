import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createNetns, inNetns, netnsName, netSkipReason, nsRun } from './netns.js';
import { ovsSkipReason, startPrivateOvs } from './ovs.js';
import type { LinkObs } from './scenarios.js';

const IFF_TAP = 0x0002, IFF_NO_PI = 0x1000, IFF_VNET_HDR = 0x4000, IFF_MULTI_QUEUE = 0x0100;
const skip = netSkipReason();
const ovsSkip = skip ?? ovsSkipReason();

/** Only the netns's own devices (lo, test bridges) remain: no wdt TAP of a VM. */
function assertNoVmLinks(linksAfter: string[], allowed: string[]): void {
  assert.deepEqual(linksAfter.filter((n) => !allowed.includes(n)), [], `leftover links: ${linksAfter.join(' ')}`);
}

test('bridge NIC: TAP with the right flags, port of the bridge, up, bridge MTU; all gone after undo', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h1'));
  const r = await inNetns<{ names: string[]; during: LinkObs[]; ports: string[]; fdNames: string[]; journalLengths: number[];
    afterUndo: LinkObs[]; portsAfter: string[]; linksAfter: string[]; log: { entries: unknown[] } }>(ns, 'bridgeApplyUndo', {});
  const [single, multi] = r.during;
  assert.equal(single!.tunFlags! & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
  assert.equal(single!.tunFlags! & IFF_MULTI_QUEUE, 0, 'one queue: no IFF_MULTI_QUEUE');
  assert.ok((multi!.tunFlags! & IFF_MULTI_QUEUE) !== 0, 'two queues: IFF_MULTI_QUEUE');
  for (const l of r.during) {
    assert.equal(l.master, 'wdtbr0');
    assert.equal(l.up, true);
    assert.equal(l.mtu, 1400, 'the TAP takes the bridge MTU before enslaving');
    assert.match(l.address!, /^fe:54:00:/, 'host-side MAC starts with fe');
  }
  assert.deepEqual(r.ports, [...r.names].sort());
  assert.deepEqual(r.fdNames, ['net0.tap0', 'net1.tap0', 'net1.tap1']);
  assert.deepEqual(r.log.entries.map((e) => (e as { kind: string }).kind), ['delete-link', 'bridge-detach', 'delete-link', 'bridge-detach']);
  assert.deepEqual(r.journalLengths, [1, 2, 3, 4], 'the journal sees every change as it is made');
  assert.ok(r.afterUndo.every((l) => !l.exists), 'undo deletes the TAPs even while fds are open');
  assert.deepEqual(r.portsAfter, []);
  assertNoVmLinks(r.linksAfter, ['lo', 'wdtbr0']);
});

test('failed starts: a missing second bridge, a late kernel refusal → clear errors, nothing left, no fd leaked', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h2'));
  type Err = { code: string; message: string; context: Record<string, unknown> };
  const r = await inNetns<{ missing: Err; late: Err; journalMissing: number[]; journalLate: number[]; linksAfter: string[];
    portsAfter: string[]; fdsLeaked: number }>(ns, 'failedStart', {});
  assert.equal(r.missing.code, 'NET_BRIDGE_MISSING');
  assert.equal(r.missing.context['bridge'], 'wdtnobr0');
  assert.match(r.missing.message, /wdtnobr0/);
  assert.deepEqual(r.journalMissing, [0], 'preflight: nothing was made');
  assert.equal(r.late.code, 'NET_LINK');
  assert.match(String(r.late.context['detail']), /mtu/i, JSON.stringify(r.late.context));
  assert.equal(r.late.context['rollback'], 'complete');
  assert.deepEqual(r.journalLate, [1, 2, 3, 0], 'the first NIC was plumbed, then all of it undone');
  assertNoVmLinks(r.linksAfter, ['lo', 'wdtbr0']);
  assert.deepEqual(r.portsAfter, []);
  assert.equal(r.fdsLeaked, 0);
});

test('kill -9 of the fd holder: the TAP and its bridge port vanish; cleanup by name finds nothing else', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h3'));
  const r = await inNetns<Record<string, unknown>>(ns, 'killNine', {});
  assert.equal(r['heldAfterClose'], true, 'the holder keeps the TAP alive after the manager closes its copies');
  assert.equal((r['portsHeld'] as string[]).length, 1);
  assert.equal(r['goneAfterKill'], true);
  assert.deepEqual(r['portsAfterKill'], []);
  assertNoVmLinks(r['linksAfter'] as string[], ['lo', 'wdtbr0']);
});

test('Open vSwitch: port with VLAN tag and external-ids; crash; a different process undoes from the log file', { skip: ovsSkip }, async (t) => {
  const ns = createNetns(t, netnsName('o1'));
  const { db } = startPrivateOvs(t, ns, 'wdtovs0');
  const dir = mkdtempSync(join(tmpdir(), 'warden-net-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const logPath = join(dir, 'undo.json');
  const a = await inNetns<Record<string, unknown>>(ns, 'ovsApplyAndCrash', { ovsDb: db, logPath });
  assert.deepEqual(a['ports'], [a['ifname']]);
  assert.equal(a['tag'], '42');
  assert.equal(a['bridge'], 'wdtovs0');
  assert.equal(a['vm'], 'vm-d');
  assert.equal(a['note'], 'a "quoted" value, with spaces', 'external-id values survive ovs-vsctl quoting');
  assert.match(a['mac'] as string, /^52:54:00:/);
  assert.equal((a['link'] as LinkObs).up, true);
  assert.ok(existsSync(logPath));
  const b = await inNetns<Record<string, unknown>>(ns, 'undoFromFile', { ovsDb: db, logPath });
  assert.deepEqual(b['portsBefore'], [a['ifname']], 'the OVS record outlives the crashed process');
  assert.deepEqual(b['portsAfter'], []);
  assert.ok(!(b['linksAfter'] as string[]).includes(a['ifname'] as string));
});

test('Open vSwitch: undo does not wait for ovs-vswitchd, and a re-add of the same port right after still ends attached', { skip: ovsSkip }, async (t) => {
  const ns = createNetns(t, netnsName('o4'));
  const { db } = startPrivateOvs(t, ns, 'wdtovs0');
  const r = await inNetns<{ seen: Array<{ ofport: string; error: string }>; portsAfter: string[]; linksAfter: string[] }>(ns, 'ovsQuickReAdd', { ovsDb: db, rounds: 5 });
  for (const s of r.seen) {
    assert.ok(Number(s.ofport) > 0, `ofport ${s.ofport}: ovs-vswitchd did not attach the re-added port`);
    assert.equal(s.error, '[]');
  }
  assert.deepEqual(r.portsAfter, []);
  assertNoVmLinks(r.linksAfter, ['lo', 'wdtovs0', 'ovs-netdev']);
});

test('Open vSwitch: kill -9 leaves the port record; cleanupVmNetwork removes it by name and external-ids', { skip: ovsSkip }, async (t) => {
  const ns = createNetns(t, netnsName('o2'));
  const { db } = startPrivateOvs(t, ns, 'wdtovs0');
  const r = await inNetns<Record<string, unknown>>(ns, 'killNine', { ovsDb: db });
  assert.equal(r['goneAfterKill'], true);
  assert.equal((r['ovsPortsAfterKill'] as string[]).length, 1, 'the OVS record stays after the TAP vanished');
  assert.deepEqual(r['ovsPortsAfterCleanup'], []);
  const cleanup = r['cleanup'] as { removed: Array<{ kind: string }>; ovs: string };
  assert.equal(cleanup.ovs, 'checked');
  assert.deepEqual(cleanup.removed.map((x) => x.kind), ['ovs-port']);
  assertNoVmLinks(r['linksAfter'] as string[], ['lo', 'wdtbr0', 'wdtovs0', 'ovs-netdev']);
});

test('Open vSwitch: a missing bridge and an unreachable ovsdb are clear errors that leave nothing', { skip: ovsSkip }, async (t) => {
  const ns = createNetns(t, netnsName('o3'));
  const { db } = startPrivateOvs(t, ns, 'wdtovs0');
  const r = await inNetns<Record<string, { code: string; context: Record<string, unknown> }> & { linksAfter: string[]; ports: string[] }>(ns, 'ovsErrors', { ovsDb: db });
  assert.equal(r['missing']!.code, 'NET_BRIDGE_MISSING');
  assert.equal(r['missing']!.context['bridge'], 'wdtnoovs');
  assert.equal(r['unreachable']!.code, 'NET_OVS');
  assert.deepEqual(r.ports, []);
  assertNoVmLinks(r.linksAfter, ['lo', 'wdtovs0', 'ovs-netdev']);
  nsRun(ns, ['true']);
});

test('cleanup finds a VM\'s devices by their alias whatever their names, and leaves other VMs\' alone', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h4'));
  const r = await inNetns<{ alias: string; cleanup: { removed: Array<{ kind: string; name: string }> }; linksAfter: string[]; portsAfter: string[] }>(ns, 'cleanupByAlias', {});
  assert.equal(r.alias, 'warden-vm=vm-f warden-nic=net0');
  assert.deepEqual(r.cleanup.removed, [{ kind: 'link', name: 'wdt-1a2b3c4d-0' }]);
  assert.ok(!r.linksAfter.includes('wdt-1a2b3c4d-0'), 'removed even while its fd was open');
  assert.ok(r.linksAfter.includes('wdt-99999999-0'), 'the other VM keeps its TAP');
  assert.deepEqual(r.portsAfter, ['wdt-99999999-0']);
});

test('macvtap on a veth: created with mode, MAC and alias, one /dev/tapN fd per queue; survives its fds; cleanup removes it', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h5'));
  const r = await inNetns<Record<string, unknown> & { during: Record<string, unknown>; fdTargets: string[] }>(ns, 'macvtapHost', {});
  if (r['unsupported'] !== undefined) return t.skip(`this kernel cannot create macvtap devices (${String(r['unsupported'])}); plan and commands are golden-tested`);
  assert.equal(r.during['kind'], 'macvtap');
  assert.equal(r.during['mode'], 'bridge');
  assert.equal(r.during['lower'], 'wdtv0');
  assert.equal(r.during['up'], true);
  assert.match(String(r.during['address']), /^52:54:00:/, 'a macvtap carries the guest MAC itself');
  assert.equal(r.during['alias'], 'warden-vm=vm-m warden-nic=net0');
  assert.equal(r.fdTargets.length, 2);
  assert.ok(r.fdTargets.every((p) => /^\/dev\/tap\d+$/.test(p)), r.fdTargets.join(' '));
  assert.equal(r['survivesClose'], true, 'unlike a TAP, a macvtap outlives its fds');
  assert.deepEqual((r['cleanup'] as { removed: unknown[] }).removed, [{ kind: 'link', name: r['ifname'] }]);
  assert.ok(!(r['linksAfter'] as string[]).includes(r['ifname'] as string));
});

test('a macvtap whose /dev/tapN node belongs to a same-index macvtap of another namespace is refused and rolled back', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h7'));
  const other = createNetns(t, netnsName('h7o'));
  const r = await inNetns<Record<string, unknown> & { error?: { code: string; message: string; context: Record<string, unknown> } }>(ns, 'macvtapForeignNode', { other });
  if (r['unsupported'] !== undefined) return t.skip(`cannot create the other namespace's macvtap (${String(r['unsupported'])})`);
  assert.equal(r['handedOut'], undefined, `the other namespace's device was handed out: ${String(r['handedOut'])}`);
  assert.equal(r.error?.code, 'NET_MACVTAP');
  assert.match(r.error!.message, new RegExp(`/dev/tap${String(r['next'])} belongs to macvtap wdtdecoy, not wdt`));
  assert.equal(r['ours'], false, 'our macvtap was rolled back');
  assert.deepEqual(r['tapFdsOpen'], [], 'the refused fd was closed');
  assert.equal(r['decoy'], true, 'the other namespace\'s macvtap is untouched');
});

test('a stale undo log leaves the same-named TAP of a later start alone (ifindex guard)', { skip }, async (t) => {
  const ns = createNetns(t, netnsName('h6'));
  const r = await inNetns<{ ifindexes: number[]; afterStale: { link: LinkObs; ports: string[] }; afterSecond: LinkObs }>(ns, 'staleLog', {});
  assert.notEqual(r.ifindexes[0], r.ifindexes[1]);
  assert.equal(r.afterStale.link.exists, true);
  assert.equal(r.afterStale.link.master, 'wdtbr0', 'still a port of its bridge');
  assert.equal(r.afterStale.ports.length, 1);
  assert.equal(r.afterSecond.exists, false, 'its own log removes it');
});
