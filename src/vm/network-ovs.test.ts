import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { netSkipReason } from '../../test/net/netns.js';
import { ovsSkipReason, startPrivateOvs } from '../../test/net/ovs.js';
import { ovsGet, ovsPorts } from '../../test/net/scenarios.js';
import type { ScenarioError } from './netns-scenarios.js';
import { isQemuOf, netnsWorld, type NetnsWorld } from './netns-world.js';
import { leftovers, vmName, waitForText } from './testing.js';

// Every warden command runs in a child node process inside a netns this test made (guest
// traffic never touches the host's network), against a private ovsdb-server/ovs-vswitchd
// (userspace datapath) whose socket reaches the VM's net backend through the ovsDb option.
const BRIDGE = 'wdnovs0';
const VLAN = 42;
const skip = netSkipReason() ?? ovsSkipReason();

interface World extends NetnsWorld {
  db: string;
  ports(): string[];
}

/**
 * A netns `wdn<tag><pid>` (see netnsWorld) with a private OVS bridge BRIDGE and a warden
 * state root in /tmp/warden-nete2e-*; the VMs are killed before OVS and the netns go.
 */
function ovsWorld(t: TestContext, tag: string): World {
  const w = netnsWorld(t, `wdn${tag}${process.pid}`, 'warden-nete2e-');
  const { db } = startPrivateOvs(t, w.ns, BRIDGE, '/tmp/warden-nete2e-ovs-');
  w.args.ovsDb = db;
  return { ...w, db, ports: () => ovsPorts(db, BRIDGE) };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ovsNic = (name = 'n0'): Record<string, unknown> => ({ name, type: 'ovs', bridge: BRIDGE, vlan: VLAN });

test('two warden VMs on an Open vSwitch bridge (userspace datapath, VLAN tag) ping each other; stop leaves no port, no TAP', { skip, timeout: 600_000 }, async (t) => {
  const w = ovsWorld(t, 'o1');
  const names = [vmName('wdn-ovs-a'), vmName('wdn-ovs-b')];
  const vms = await w.startVms([
    w.env.specFile({ name: names[0]!, networks: [ovsNic()], disk: w.overlay('a'), cmdline: 'warden.ip=10.78.0.1/24' }),
    w.env.specFile({ name: names[1]!, networks: [ovsNic()], disk: w.overlay('b'), cmdline: 'warden.ip=10.78.0.2/24 warden.ping=10.78.0.1' }),
  ]);
  const taps = vms.flatMap((v) => v.taps);
  assert.equal(taps.length, 2);
  // While they run: each TAP is a tagged port of the bridge, its VM and NIC in external-ids.
  assert.deepEqual(w.ports(), [...taps].sort());
  for (const v of vms) {
    const tap = v.taps[0]!;
    assert.ok(w.links().includes(tap), `TAP ${tap} exists in the netns`);
    assert.equal(ovsGet(w.db, 'Port', tap, 'tag'), String(VLAN));
    assert.equal(ovsGet(w.db, 'Interface', tap, 'external_ids:warden-vm'), v.name);
    assert.equal(ovsGet(w.db, 'Interface', tap, 'external_ids:warden-nic'), 'n0');
  }
  // b pings a over the bridge: an echo reply proves traffic both ways. The line may arrive in pieces.
  const pinger = vms[1]!;
  await waitForText(pinger.serialLog, 'WARDEN-PING-', 240_000);
  assert.match(await waitForText(pinger.serialLog, 'WARDEN-PING-OK 10.78.0.1', 5_000), /WARDEN-PING-OK 10\.78\.0\.1/);
  // A graceful stop needs each guest's ACPI listener, up once it printed its ready line.
  for (const v of vms) await waitForText(v.serialLog, 'WARDEN-GUEST-READY', 120_000);
  assert.deepEqual(await w.run('stopAll', { names }, 300_000), ['stopped', 'stopped']);
  assert.deepEqual(w.ports(), [], 'ovs-vsctl list-ports is empty after stop');
  assert.deepEqual(w.links().filter((l) => taps.includes(l)), [], 'no TAP remains');
  for (const n of names) assert.deepEqual(leftovers(n, w.env.stateRoot), []);
});

test('kill -9 of a warden VM\'s QEMU: the next warden command (list) reconciles it to crashed and removes its OVS port and TAP', { skip, timeout: 600_000 }, async (t) => {
  const w = ovsWorld(t, 'o2');
  const name = vmName('wdn-ovs-c');
  // This start finds the ovsdb through $WARDEN_OVS_DB; the reconcile below is told no db at
  // all: it must undo against the one recorded in the VM's undo log.
  const [vm] = await w.startVms([w.env.specFile({ name, networks: [ovsNic()], cmdline: 'warden.ip=10.78.0.3/24' })], { ovsDbViaEnv: true });
  assert.equal(vm!.taps.length, 1);
  assert.deepEqual(w.ports(), vm!.taps, 'the port exists before the crash');
  assert.ok(isQemuOf(vm!.pid, name), `pid ${vm!.pid} is the VM's QEMU`);
  process.kill(vm!.pid, 'SIGKILL');
  await waitFor(() => !isQemuOf(vm!.pid, name), 30_000, `QEMU (pid ${vm!.pid}) to end`);
  // The kernel removed the TAP with QEMU's last fd; the ovsdb row stays until warden undoes it.
  assert.deepEqual(w.ports(), vm!.taps, 'the port outlives QEMU until a warden command reconciles');
  const list = await w.run<Array<{ name: string; phase: string; reason?: string; pendingUndo: number }>>('listVms', { ovsDb: undefined }, 180_000);
  assert.deepEqual(list, [{ name, phase: 'crashed', reason: 'crashed', pendingUndo: 0 }]);
  assert.deepEqual(w.ports(), [], 'the OVS port went with the reconcile');
  assert.deepEqual(w.links().filter((l) => vm!.taps.includes(l)), [], 'no TAP remains');
  assert.deepEqual(leftovers(name, w.env.stateRoot), []);
});

test('a start whose second NIC names a missing bridge is refused with NET_BRIDGE_MISSING and leaves nothing', { skip, timeout: 300_000 }, async (t) => {
  const w = ovsWorld(t, 'o3');
  const name = vmName('wdn-ovs-f');
  const missing = 'wdnnobr0';
  const spec = w.env.specFile({ name, networks: [ovsNic(), { name: 'n1', type: 'bridge', bridge: missing }] });
  const r = await w.run<{ error?: ScenarioError; phase: string; taps: string[] }>('startExpectingFailure', { spec }, 240_000);
  assert.equal(r.error?.code, 'NET_BRIDGE_MISSING', `refused with: ${JSON.stringify(r.error)}`);
  assert.equal(r.error?.context?.['bridge'], missing);
  assert.match(r.error?.message ?? '', new RegExp(missing));
  assert.notEqual(r.phase, 'running');
  assert.equal(r.taps.length, 2, 'the plan asked for a TAP per NIC');
  assert.deepEqual(w.links().filter((l) => r.taps.includes(l)), [], 'no TAP');
  assert.deepEqual(w.ports(), [], 'no OVS bridge membership');
  // No QEMU, cgroup, uid lease or socket; a later command finds nothing left to undo.
  assert.deepEqual(leftovers(name, w.env.stateRoot), []);
  const list = await w.run<Array<{ name: string; phase: string; reason?: string; pendingUndo: number }>>('listVms', {}, 120_000);
  assert.equal(list.length, 1);
  assert.notEqual(list[0]!.phase, 'running');
  assert.equal(list[0]!.reason, 'start-failed');
  assert.equal(list[0]!.pendingUndo, 0);
});
