/**
 * @module test/net/guest-scenarios: scenarios with real test guests, run by child.ts
 * inside a test netns: guests pinging over a Linux or OVS bridge, user-mode forwards.
 */
import { spawnSync } from 'node:child_process';
import { NetError, applyHostActions, closeHostFds, hostIfName, stableMac, tapNetdev, undoHostActions, userNetdev, type HostAction } from '../../src/net/index.js';
import { loadNative } from '../../src/sys/index.js';
import { bootGuest } from './guest.js';
import { PREFIX, bridgePorts, links, makeBridge, makeVeth, nicActions, ovsPorts, realDeps } from './scenarios.js';

/**
 * Two test guests whose TAPs are ports of one bridge (Linux, or OVS when ovsDb is given)
 * ping each other; then QEMU is killed (-9), the log undone, and what is left observed.
 */
export async function guestsPing(a: { ovsDb?: string }): Promise<Record<string, unknown>> {
  const ovs = a.ovsDb !== undefined;
  const bridge = ovs ? 'wdtovs0' : 'wdtbr0';
  if (!ovs) makeBridge(bridge);
  const vms = ['vm-p1', 'vm-p2'];
  const deps = realDeps(ovs ? { ovsDb: a.ovsDb! } : {});
  // One apply per VM, as warden does: each VM has its own fds and undo log.
  const nets: Awaited<ReturnType<typeof applyHostActions>>[] = [];
  // The first guest has a two-queue TAP (IFF_MULTI_QUEUE, fds "3:4", mq=on on the device).
  const queues = [2, 1];
  for (const [i, vm] of vms.entries()) {
    const [tap, attach] = nicActions(vm, 'net0', bridge, ovs ? {} : undefined) as [Extract<HostAction, { kind: 'tap' }>, HostAction];
    const fdNames = Array.from({ length: queues[i]! }, (_, q) => `net0.tap${q}`);
    nets.push(await applyHostActions([{ ...tap, queues: queues[i]!, fdNames }, attach], deps));
  }
  const guests: Array<ReturnType<typeof bootGuest>> = [];
  try {
    vms.forEach((vm, i) => {
      const [me, peer] = i === 0 ? ['10.99.0.1', '10.99.0.2'] : ['10.99.0.2', '10.99.0.1'];
      const fds = [...nets[i]!.fds.values()];
      guests.push(bootGuest({ append: `warden.ip=${me}/24 warden.ping=${peer}`, mac: stableMac(vm, 'net0'), fds,
        netdev: tapNetdev('hostnet0', fds.map((_, k) => 3 + k)), ...(fds.length > 1 ? { deviceOpts: `,mq=on,vectors=${2 * fds.length + 2}` } : {}) }));
    });
    // QEMU holds the TAPs now; the manager closes its copies, as warden does after the spawn.
    for (const n of nets) closeHostFds(n.fds, loadNative());
    const pings = await Promise.all(guests.map((g) => g.waitFor(/WARDEN-PING-(?:OK|FAIL) [\d.]+/, 150_000)));
    const ports = ovs ? ovsPorts(a.ovsDb!, bridge) : bridgePorts(bridge);
    for (const g of guests) await g.kill();
    for (const n of nets) await undoHostActions(n.undo, realDeps());
    return { pings, ports, names: vms.map((vm) => hostIfName(vm, 'net0', PREFIX)),
      portsAfter: ovs ? ovsPorts(a.ovsDb!, bridge) : bridgePorts(bridge), linksAfter: links() };
  } finally {
    for (const g of guests) await g.kill();
    for (const n of nets) closeHostFds(n.fds, loadNative());
  }
}

/** User-mode networking: the guest's HTTP server is reachable through a 127.0.0.1 host forward. */
export async function userModeForward(): Promise<Record<string, unknown>> {
  const hostPort = 18080;
  const netdev = userNetdev('usernet0', { hostfwd: [{ proto: 'tcp', hostPort, guestPort: 8080 }] });
  const g = bootGuest({ append: 'warden.ip=10.0.2.15/24 warden.http=8080', mac: stableMac('vm-u', 'net0'), netdev });
  try {
    await g.waitFor(/WARDEN-GUEST-READY/, 150_000);
    let body = '';
    for (let i = 0; i < 50 && body === ''; i++) {
      try { body = await (await fetch(`http://127.0.0.1:${hostPort}/`)).text(); } catch { await new Promise((r) => setTimeout(r, 200)); }
    }
    const listeners = spawnSync('ss', ['-Hltn', `sport = :${hostPort}`], { encoding: 'utf8' }).stdout.trim();
    return { netdev, body, listeners };
  } finally {
    await g.kill();
  }
}

/** A guest on a macvtap (bridge mode) over a veth pings the veth peer; then undo removes the macvtap. */
export async function macvtapGuest(): Promise<Record<string, unknown>> {
  // /dev/tap<ifindex> lives in the one global devtmpfs, and ifindexes restart in every
  // netns: a spare veth pair moves this macvtap off the ifindex host.test.ts's uses.
  makeVeth('wdtx0', 'wdtx1');
  makeVeth('wdtv0', 'wdtv1', '10.98.0.1/24');
  const ifname = hostIfName('vm-mg', 'net0', PREFIX);
  const mac = stableMac('vm-mg', 'net0');
  let net;
  try {
    net = await applyHostActions([{ kind: 'macvtap', nic: 'net0', ifname, link: 'wdtv0', mode: 'bridge', mac, queues: 1, fdNames: ['q0'] }], realDeps({ vm: 'vm-mg' }));
  } catch (e) {
    if (e instanceof NetError && e.code === 'NET_MACVTAP_UNSUPPORTED') return { unsupported: String(e.context['stderr']) };
    throw e;
  }
  const fds = [...net.fds.values()];
  const g = bootGuest({ append: 'warden.ip=10.98.0.2/24 warden.ping=10.98.0.1', mac, fds, netdev: tapNetdev('hostnet0', [3]) });
  try {
    closeHostFds(net.fds, loadNative());
    const ping = await g.waitFor(/WARDEN-PING-(?:OK|FAIL) [\d.]+/, 150_000);
    await g.kill();
    await undoHostActions(net.undo, realDeps());
    return { ping, ifname, linksAfter: links() };
  } finally {
    await g.kill();
    closeHostFds(net.fds, loadNative());
  }
}
