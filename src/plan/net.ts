/**
 * @module plan/net: NICs. User networking is passt in its own jail (plan/helpers.ts), or
 * QEMU's slirp with explicit host forwards when the spec asks for it (backend: slirp);
 * bridge, ovs and macvtap become TAP fds the net module opens (host actions), passed with
 * fds=; a stable MAC and interface name come from a hash of the VM and NIC names.
 */
import type { HostAction } from '../net/index.js';
import type { Network, Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';
import { chosenNote, planPasst, resolvedForwards } from './helpers.js';
import { hostWideName } from './scope.js';
import { sha256 } from '../sys/sha256.js';

const MODEL_DRIVER: Record<Network['model'], string> = { virtio: 'virtio-net-pci', e1000e: 'e1000e', rtl8139: 'rtl8139' };

/*
 * Names and MACs follow src/net's scheme exactly (net/names.ts: "the planner may call
 * these"), so the net module's cleanup recognises every device of a VM by name. Kept as a
 * local copy because plan may import only net's types; a test compares the two.
 */
function digest(...parts: string[]): Buffer {
  return sha256(parts.join('\0'));
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Uint8Array, chars: number): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) { bits -= 5; out += BASE32[(acc >>> bits) & 31]; }
    acc &= (1 << bits) - 1;
    if (out.length >= chars) break;
  }
  return out;
}

/** 52:54:00:xx:xx:xx from the VM and NIC names: stable across restarts, unicast and locally administered. */
export function stableMac(vm: string, nic: string): string {
  const h = digest('mac', vm, nic);
  return ['52', '54', '00', ...[0, 1, 2].map((i) => h[i]!.toString(16).padStart(2, '0'))].join(':');
}

/** The host device name of one NIC (14 bytes): "wd" + 8 base32 of the VM + 4 of the NIC. */
export function hostIfname(vm: string, nic: string): string {
  return `wd${base32(digest('vm', vm), 8)}${base32(digest('nic', vm, nic), 4)}`;
}

export function planNetworks(spec: Spec, facts: Facts, b: PlanBuilder): void {
  spec.networks.forEach((n, i) => planNic(spec, n, `networks[${i}]`, facts, b));
}

/**
 * One NIC: its backend (host actions, helper or slirp), its netdev and its device, all into
 * `b`. Boot renders them as argv; hot-plug (plan/hotplug-nic) renders the same as QMP, so a
 * NIC is planned one way.
 */
export function planNic(spec: Spec, n: Network, from: string, facts: Facts, b: PlanBuilder): void {
  const mac = n.mac ?? stableMac(spec.name, n.name);
  const netdev = `net-${n.name}`;
  let hasBackend = true;
  if (n.type === 'user' && n.backend === 'slirp') planUser(n, from, netdev, facts, b);
  else if (n.type === 'user') planPasst(spec, n, from, netdev, facts, b);
  else if (n.type === 'none') hasBackend = false;
  else planTap(spec.name, n, mac, from, netdev, facts, b);
  const dev: Record<string, unknown> = { driver: MODEL_DRIVER[n.model], id: `nic-${n.name}`, mac, ...b.pci(from) };
  if (hasBackend) dev['netdev'] = netdev;
  if (n.queues > 1) { dev['mq'] = true; dev['vectors'] = 2 * n.queues + 2; }
  b.device(from, dev);
}

function planUser(n: Network, from: string, id: string, facts: Facts, b: PlanBuilder): void {
  const nd: Record<string, unknown> = { type: 'user', id };
  if (n.restrict !== undefined) nd['restrict'] = n.restrict;
  const fwd = resolvedForwards(n, from, facts);
  if (fwd.length > 0) nd['hostfwd'] = fwd.map((f) => ({ str: `${f.proto}:${f.hostAddress}:${f.host}-:${f.guest}` }));
  b.qapiArg(from, '-netdev', 'netdev_add', nd);
  b.note('netns', 'host network namespace', 'shared', from, 'slirp (backend: slirp) runs inside QEMU and reaches the network through the host\'s sockets');
  fwd.forEach((f, k) => b.note('port', `${f.proto}/${f.hostAddress}:${f.host}`, 'listen', `${from}.forwards[${k}]`, `forwarded to guest port ${f.guest}${chosenNote(n, k, f.host)}`));
}

/** TAP-backed types: the host action opens the queues; vhost-net optionally. */
function planTap(vm: string, n: Network, mac: string, from: string, id: string, facts: Facts, b: PlanBuilder): void {
  const queues = Array.from({ length: n.queues }, (_, q) => q);
  const tapNames = queues.map((q) => `tap-${n.name}-${q}`);
  let tapFds: number[];
  let ifname: string;
  if (n.type === 'macvtap') {
    ifname = hostIfname(hostWideName(vm, facts.scope), n.name);
    const a: HostAction = { kind: 'macvtap', nic: n.name, ifname, link: n.link ?? '', mode: n.mode ?? 'bridge', mac, queues: n.queues, fdNames: tapNames };
    tapFds = b.action(from, a, tapNames);
    b.note('macvtap', ifname, 'create', from, `macvtap on ${n.link} (${n.mode ?? 'bridge'} mode)`);
  } else {
    ifname = hostIfname(hostWideName(vm, facts.scope), n.name);
    const tap: HostAction = { kind: 'tap', nic: n.name, ifname, queues: n.queues, vnetHdr: n.model === 'virtio', mac, fdNames: tapNames, ...(n.mtu === undefined ? {} : { mtu: n.mtu }) };
    tapFds = b.action(from, tap, tapNames);
    b.note('tap', ifname, 'create', from, `${n.queues} queue(s)`);
    const bridge = n.bridge ?? '';
    const attach: HostAction = n.type === 'ovs'
      ? { kind: 'ovs-attach', nic: n.name, ifname, bridge, ...(n.vlan === undefined ? {} : { vlan: n.vlan }), externalIds: { 'warden-vm': vm, 'warden-nic': n.name, 'attached-mac': mac } }
      : { kind: 'bridge-attach', nic: n.name, ifname, bridge };
    b.action(`${from}.bridge`, attach, []);
    b.note('bridge-port', `${bridge}/${ifname}`, 'attach', `${from}.bridge`, n.type === 'ovs' ? `Open vSwitch port${n.vlan === undefined ? '' : `, VLAN ${n.vlan}`}` : 'Linux bridge port');
  }
  const nd: Record<string, unknown> = { type: 'tap', id };
  if (n.queues === 1) nd['fd'] = String(tapFds[0]); else nd['fds'] = tapFds.join(':');
  if (n.vhost) planVhost(n, from, nd, facts, b);
  b.qapiArg(from, '-netdev', 'netdev_add', nd);
}

function planVhost(n: Network, from: string, nd: Record<string, unknown>, facts: Facts, b: PlanBuilder): void {
  if (facts.host?.vhostNet === false) {
    b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.vhost`, message: 'vhost is requested, but this host has no /dev/vhost-net', suggestion: `set networks[].vhost: false for ${n.name}` });
    return;
  }
  const names = Array.from({ length: n.queues }, (_, q) => `vhost-${n.name}-${q}`);
  const fds = b.action(`${from}.vhost`, { kind: 'vhost', nic: n.name, fdNames: names }, names);
  nd['vhost'] = true;
  if (n.queues === 1) nd['vhostfd'] = String(fds[0]); else nd['vhostfds'] = fds.join(':');
  b.note('device', '/dev/vhost-net', 'rw (opened by the manager)', `${from}.vhost`, `${n.queues} fd(s) passed`);
}
