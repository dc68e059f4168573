/**
 * @module net/steps: the pure mapping HostAction[] → steps (each an `ip`/`ovs-vsctl` argv
 * or an fd to open) and undo entries → argv. Golden-tested; the executor only runs them.
 */
import type { HostAction } from './actions.js';
import { hostSideMac } from './names.js';

/** Where the tools are and which ovsdb to talk to. Recorded into OVS undo entries. */
export interface CommandOptions {
  ip?: string;
  ovsVsctl?: string;
  /** The ovsdb-server socket path; absent: ovs-vsctl's default (the system daemon). */
  ovsDb?: string;
  ovsTimeoutSec?: number;
  /**
   * The VM the devices belong to. Recorded as each created device's alias (ifalias,
   * see ownerAlias), so cleanup finds a VM's devices whatever naming scheme made them.
   */
  vm?: string;
}

/** The ifalias qemu-warden puts on a device it creates: `warden-vm=<vm> warden-nic=<nic>`, URI-encoded. */
export function ownerAlias(vm: string, nic: string): string {
  return `warden-vm=${encodeURIComponent(vm)} warden-nic=${encodeURIComponent(nic)}`;
}

/** The VM named by an ownerAlias, or undefined for any other alias. */
export function aliasOwner(alias: string | undefined): string | undefined {
  const m = /^warden-vm=(\S+) warden-nic=\S+$/.exec(alias ?? '');
  if (!m) return undefined;
  try { return decodeURIComponent(m[1]!); } catch { return undefined; }
}

/** ifalias is at most 255 bytes (IFALIASZ 256 with the NUL). */
export const MAX_ALIAS = 255;

/**
 * One recorded host change and how to undo it. JSON data: a different process can undo it.
 * `ifindex` identifies the device instance that was made: undo leaves a device of the same
 * name but another ifindex alone (a later start made it), so a stale log removes nothing else.
 */
export type UndoEntry =
  | { kind: 'delete-link'; nic: string; ifname: string; device: 'tap' | 'macvtap'; ifindex?: number }
  | { kind: 'bridge-detach'; nic: string; ifname: string; bridge: string; ifindex?: number }
  | { kind: 'ovs-del-port'; nic: string; ifname: string; bridge: string; ovsDb?: string; ovsVsctl?: string; ifindex?: number };

export type RunCode = 'NET_LINK' | 'NET_OVS' | 'NET_MACVTAP';

export type Step =
  /** Preflight: the name must be free: a device already there is someone else's (or a leftover). */
  | { op: 'ensure-absent'; nic: string; ifname: string; argv: string[] }
  /** Preflight: the bridge must exist (NET_BRIDGE_MISSING); a Linux bridge's MTU is remembered for `mtuOf`. */
  | { op: 'check-bridge'; nic: string; bridge: string; type: 'linux' | 'ovs'; argv: string[] }
  /** TUNSETIFF through the native addon, then its ifindex (argv); the undo is recorded once the fds exist. */
  | { op: 'open-tap'; nic: string; ifname: string; queues: number; vnetHdr: boolean; fdNames: string[]; argv: string[]; undo: UndoEntry }
  /**
   * A command. `mtuOf` appends `mtu <that Linux bridge's MTU>` (learnt in preflight).
   * `undo` is recorded after success, or before running when `undoFirst` (ovs-vsctl,
   * whose timeout leaves the outcome unknown; its undo is idempotent).
   */
  | { op: 'run'; nic: string; argv: string[]; code: RunCode; mtuOf?: string; undo?: UndoEntry; undoFirst?: boolean }
  /** Read the macvtap's ifindex (argv), then open /dev/tap<ifindex> once per fd name. */
  | { op: 'open-macvtap'; nic: string; ifname: string; fdNames: string[]; argv: string[] }
  | { op: 'open-vhost'; nic: string; path: string; fdNames: string[] };

const OVS_TIMEOUT_SEC = 5;

/** The `ovs-vsctl` argv prefix: tool, database, timeout. */
export function ovsBase(o: Pick<CommandOptions, 'ovsVsctl' | 'ovsDb' | 'ovsTimeoutSec'>): string[] {
  return [o.ovsVsctl ?? 'ovs-vsctl', ...(o.ovsDb === undefined ? [] : [`--db=unix:${o.ovsDb}`]), `--timeout=${o.ovsTimeoutSec ?? OVS_TIMEOUT_SEC}`];
}

/** ovsdb's string syntax accepts JSON-style double-quoted strings: quote every value. */
function ovsString(value: string): string {
  return JSON.stringify(value);
}

type Tap = Extract<HostAction, { kind: 'tap' }>;
type Attach = Extract<HostAction, { kind: 'bridge-attach' | 'ovs-attach' }>;

/** Checks that need no change to the host: every name free, every bridge present. */
function preflight(a: HostAction, o: CommandOptions, ip: string): Step[] {
  switch (a.kind) {
    case 'tap':
    case 'macvtap': return [{ op: 'ensure-absent', nic: a.nic, ifname: a.ifname, argv: [ip, '-j', 'link', 'show', 'dev', a.ifname] }];
    case 'bridge-attach': return [{ op: 'check-bridge', nic: a.nic, bridge: a.bridge, type: 'linux', argv: [ip, '-j', '-d', 'link', 'show', 'dev', a.bridge] }];
    case 'ovs-attach': return [{ op: 'check-bridge', nic: a.nic, bridge: a.bridge, type: 'ovs', argv: [...ovsBase(o), 'br-exists', a.bridge] }];
    case 'vhost': return [];
  }
}

function aliasArgs(vm: string | undefined, nic: string): string[] {
  return vm === undefined ? [] : ['alias', ownerAlias(vm, nic)];
}

function tapSteps(a: Tap, attach: Attach | undefined, ip: string, vm: string | undefined): Step[] {
  // Host-side MAC (and MTU) before enslaving: a Linux bridge takes the TAP at the bridge's MTU.
  const mtuOf = a.mtu === undefined && attach?.kind === 'bridge-attach' ? attach.bridge : undefined;
  const steps: Step[] = [
    { op: 'open-tap', nic: a.nic, ifname: a.ifname, queues: a.queues, vnetHdr: a.vnetHdr, fdNames: [...a.fdNames],
      argv: [ip, '-j', 'link', 'show', 'dev', a.ifname], undo: { kind: 'delete-link', nic: a.nic, ifname: a.ifname, device: 'tap' } },
    { op: 'run', nic: a.nic, code: 'NET_LINK', argv: [ip, 'link', 'set', 'dev', a.ifname, 'address', hostSideMac(a.mac),
      ...(a.mtu === undefined ? [] : ['mtu', String(a.mtu)]), ...aliasArgs(vm, a.nic)], ...(mtuOf === undefined ? {} : { mtuOf }) },
  ];
  if (attach === undefined) steps.push({ op: 'run', nic: a.nic, code: 'NET_LINK', argv: [ip, 'link', 'set', 'dev', a.ifname, 'up'] });
  return steps;
}

function bridgeSteps(a: Extract<HostAction, { kind: 'bridge-attach' }>, ip: string): Step[] {
  return [{ op: 'run', nic: a.nic, code: 'NET_LINK', argv: [ip, 'link', 'set', 'dev', a.ifname, 'master', a.bridge, 'up'],
    undo: { kind: 'bridge-detach', nic: a.nic, ifname: a.ifname, bridge: a.bridge } }];
}

function ovsSteps(a: Extract<HostAction, { kind: 'ovs-attach' }>, o: CommandOptions, ip: string): Step[] {
  const ids = Object.keys(a.externalIds).sort().map((k) => `external-ids:${k}=${ovsString(a.externalIds[k]!)}`);
  const add = [...ovsBase(o), '--', '--if-exists', 'del-port', a.ifname, '--', 'add-port', a.bridge, a.ifname,
    ...(a.vlan === undefined ? [] : [`tag=${a.vlan}`]), ...(ids.length === 0 ? [] : ['--', 'set', 'Interface', a.ifname, ...ids])];
  const undo: UndoEntry = { kind: 'ovs-del-port', nic: a.nic, ifname: a.ifname, bridge: a.bridge,
    ...(o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb }), ...(o.ovsVsctl === undefined ? {} : { ovsVsctl: o.ovsVsctl }) };
  return [
    { op: 'run', nic: a.nic, code: 'NET_OVS', argv: add, undo, undoFirst: true },
    { op: 'run', nic: a.nic, code: 'NET_LINK', argv: [ip, 'link', 'set', 'dev', a.ifname, 'up'] },
  ];
}

function macvtapSteps(a: Extract<HostAction, { kind: 'macvtap' }>, ip: string, vm: string | undefined): Step[] {
  return [
    { op: 'run', nic: a.nic, code: 'NET_MACVTAP',
      argv: [ip, 'link', 'add', 'link', a.link, 'name', a.ifname, 'address', a.mac, 'type', 'macvtap', 'mode', a.mode],
      undo: { kind: 'delete-link', nic: a.nic, ifname: a.ifname, device: 'macvtap' } },
    { op: 'run', nic: a.nic, code: 'NET_LINK', argv: [ip, 'link', 'set', 'dev', a.ifname, ...aliasArgs(vm, a.nic), 'up'] },
    { op: 'open-macvtap', nic: a.nic, ifname: a.ifname, fdNames: [...a.fdNames], argv: [ip, '-j', 'link', 'show', 'dev', a.ifname] },
  ];
}

/**
 * The steps that realise `actions` (assumed valid: see validateActions): first every
 * check that changes nothing (names free, bridges present), so bad input fails before
 * anything exists; then the changes, action by action.
 */
export function stepsFor(actions: readonly HostAction[], o: CommandOptions = {}): Step[] {
  const ip = o.ip ?? 'ip';
  const attachOf = new Map<string, Attach>();
  for (const a of actions) if (a.kind === 'bridge-attach' || a.kind === 'ovs-attach') attachOf.set(a.ifname, a);
  const changes = actions.flatMap((a): Step[] => {
    switch (a.kind) {
      case 'tap': return tapSteps(a, attachOf.get(a.ifname), ip, o.vm);
      case 'bridge-attach': return bridgeSteps(a, ip);
      case 'ovs-attach': return ovsSteps(a, o, ip);
      case 'macvtap': return macvtapSteps(a, ip, o.vm);
      case 'vhost': return [{ op: 'open-vhost', nic: a.nic, path: '/dev/vhost-net', fdNames: [...a.fdNames] }];
    }
  });
  return [...actions.flatMap((a) => preflight(a, o, ip)), ...changes];
}

/** The command that tells whether the entry's device is still the instance that was made. */
export function identityArgv(e: UndoEntry, o: Pick<CommandOptions, 'ip'> = {}): string[] {
  return [o.ip ?? 'ip', '-j', 'link', 'show', 'dev', e.ifname];
}

/** The command that undoes one entry. Each is idempotent or its "already gone" failure is tolerated. */
export function undoArgv(e: UndoEntry, o: Pick<CommandOptions, 'ip' | 'ovsTimeoutSec'> = {}): string[] {
  const ip = o.ip ?? 'ip';
  switch (e.kind) {
    case 'delete-link': return [ip, 'link', 'delete', 'dev', e.ifname];
    case 'bridge-detach': return [ip, 'link', 'set', 'dev', e.ifname, 'nomaster'];
    case 'ovs-del-port': return [...ovsBase({ ...e, ...(o.ovsTimeoutSec === undefined ? {} : { ovsTimeoutSec: o.ovsTimeoutSec }) }),
      '--', '--if-exists', 'del-port', e.ifname];
  }
}
