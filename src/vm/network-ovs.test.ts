import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, inNetns, netSkipReason, nsRun } from '../../test/net/netns.js';
import { ovsSkipReason, startPrivateOvs } from '../../test/net/ovs.js';
import { ovsGet, ovsPorts } from '../../test/net/scenarios.js';
import type { ScenarioArgs, ScenarioError, StartedVm } from './netns-scenarios.js';
import { leftovers, testEnv, waitForText, type TestEnv } from './testing.js';

// Every warden command runs in a child node process inside a netns this test made (guest
// traffic never touches the host's network), against a private ovsdb-server/ovs-vswitchd
// (userspace datapath) whose socket reaches the VM's net backend through the ovsDb option.
// The children enter only the netns (keepMounts): the jailer needs the host's cgroup mounts.
const SCENARIOS = fileURLToPath(new URL('./netns-scenarios.js', import.meta.url));
const BRIDGE = 'wdnovs0';
const VLAN = 42;
const skip = netSkipReason() ?? ovsSkipReason();

interface World {
  env: TestEnv;
  db: string;
  /** Runs a netns-scenarios function (one warden command) inside the netns. */
  run<T>(fn: string, extra: Record<string, unknown>, timeoutMs: number): Promise<T>;
  /** Network devices of the netns. */
  links(): string[];
  ports(): string[];
  /** A fresh qcow2 overlay over the shared base (each VM needs its own writable disk). */
  overlay(tag: string): string;
  /** QEMU pids to SIGKILL (by pid) if the teardown's `warden kill` could not end them. */
  pids: Map<number, string>;
}

/** Is `pid` still the QEMU of VM `name` (not a reused pid)? */
function isQemuOf(pid: number, name: string): boolean {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(`guest=${name},`); } catch { return false; }
}

/**
 * A netns `wdn<tag><pid>` with a private OVS bridge BRIDGE and a warden state root in
 * /tmp/warden-nete2e-*. Teardown (also on failure): `warden kill` of every VM while the
 * netns and ovsdb still exist (after-hooks run in the order registered), then OVS, netns, files.
 */
function ovsWorld(t: TestContext, tag: string): World {
  const env = testEnv('warden-nete2e-');
  const ns = `wdn${tag}${process.pid}`;
  const args: ScenarioArgs = { stateRoot: env.stateRoot };
  const pids = new Map<number, string>();
  const run = <T>(fn: string, extra: Record<string, unknown>, timeoutMs: number): Promise<T> =>
    inNetns<T>(ns, `${SCENARIOS}#${fn}`, { ...args, ...extra }, timeoutMs, { keepMounts: true });
  t.after(async () => {
    await run('killAll', {}, 120_000).catch((e: unknown) => console.error(`teardown: warden kill failed: ${String(e)}`));
    for (const [pid, name] of pids) if (isQemuOf(pid, name)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    env.cleanup();
  });
  createNetns(t, ns);
  const { db } = startPrivateOvs(t, ns, BRIDGE, '/tmp/warden-nete2e-ovs-');
  args.ovsDb = db;
  return {
    env, db, run, pids,
    links: () => nsRun(ns, ['ls', '/sys/class/net']).stdout.split(/\s+/).filter((l) => l !== ''),
    ports: () => ovsPorts(db, BRIDGE),
    overlay(tag2) {
      const p = join(env.dir, `${tag2}.qcow2`);
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', env.base, '-F', 'qcow2', p], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`qemu-img create ${p}: ${r.stderr}`);
      return p;
    },
  };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startVms(w: World, specs: string[], extra: Record<string, unknown> = {}): Promise<StartedVm[]> {
  const vms = await w.run<StartedVm[]>('createAndStart', { specs, ...extra }, 300_000);
  for (const v of vms) w.pids.set(v.pid, v.name);
  return vms;
}

const ovsNic = (name = 'n0'): Record<string, unknown> => ({ name, type: 'ovs', bridge: BRIDGE, vlan: VLAN });

test('two warden VMs on an Open vSwitch bridge (userspace datapath, VLAN tag) ping each other; stop leaves no port, no TAP', { skip, timeout: 600_000 }, async (t) => {
  const w = ovsWorld(t, 'o1');
  const names = ['wdn-ovs-a', 'wdn-ovs-b'];
  const vms = await startVms(w, [
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
  const name = 'wdn-ovs-c';
  // This start finds the ovsdb through $WARDEN_OVS_DB; the reconcile below is told no db at
  // all: it must undo against the one recorded in the VM's undo log.
  const [vm] = await startVms(w, [w.env.specFile({ name, networks: [ovsNic()], cmdline: 'warden.ip=10.78.0.3/24' })], { ovsDbViaEnv: true });
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
  const name = 'wdn-ovs-f';
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
