/**
 * @module net/steps: the pure mapping HostAction[] → steps (each a netlink link change, an
 * ovsdb transaction or an fd to open) with their undo entries. Golden-tested; the executor only runs them.
 */
import type { HostAction, MacvtapMode } from './actions.js';
import { hostSideMac } from './names.js';

/** Which ovsdb to talk to, and the VM the devices belong to. Recorded into OVS undo entries. */
export interface CommandOptions {
  /** The ovsdb-server socket path; absent: the system daemon's (DEFAULT_OVS_DB). */
  ovsDb?: string;
  ovsTimeoutSec?: number;
  /**
   * The VM the devices belong to. Recorded as each created device's alias (ifalias,
   * see ownerAlias), so cleanup finds a VM's devices whatever naming scheme made them.
   */
  vm?: string;
}

/** Where ovs-vsctl looks by default (Debian's OVS_RUNDIR). */
export const DEFAULT_OVS_DB = '/var/run/openvswitch/db.sock';

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
 * (`ovsVsctl` is what logs written before the ovsdb client named; it is accepted and ignored.)
 */
export type UndoEntry =
  | { kind: 'delete-link'; nic: string; ifname: string; device: 'tap' | 'macvtap'; ifindex?: number }
  | { kind: 'bridge-detach'; nic: string; ifname: string; bridge: string; ifindex?: number }
  | { kind: 'ovs-del-port'; nic: string; ifname: string; bridge: string; ovsDb?: string; ovsVsctl?: string; ifindex?: number };

export type RunCode = 'NET_LINK' | 'NET_MACVTAP';

/** The ovsdb a step talks to: its socket path and how long to wait for it (and for ovs-vswitchd). */
export interface OvsTarget {
  db: string;
  timeoutSec: number;
}

/** A change to an existing link, by name; `master` names a Linux bridge. One RTM_NEWLINK. */
export interface LinkSet {
  address?: string;
  mtu?: number;
  alias?: string;
  master?: string;
  up?: true;
}

/**
 * One operation on the host. Links are read and changed over netlink (LinkPort), OVS ports
 * in one ovsdb transaction (OvsdbPort); nothing spawns a process.
 */
export type Step =
  /** Preflight: the name must be free: a device already there is someone else's (or a leftover). */
  | { op: 'ensure-absent'; nic: string; ifname: string }
  /** Preflight: the Linux bridge must exist (NET_BRIDGE_MISSING) and be one; its MTU is remembered for `mtuOf`. */
  | { op: 'check-bridge'; nic: string; bridge: string; type: 'linux' }
  /** Preflight: the OVS bridge must exist in that ovsdb. */
  | { op: 'check-bridge'; nic: string; bridge: string; type: 'ovs'; ovs: OvsTarget }
  /** TUNSETIFF through the native addon, then its ifindex; the undo is recorded once the fds exist. */
  | { op: 'open-tap'; nic: string; ifname: string; queues: number; vnetHdr: boolean; fdNames: string[]; undo: UndoEntry }
  /** RTM_NEWLINK on the link; `mtuOf` adds that Linux bridge's MTU (learnt in preflight). `undo` is recorded after success. */
  | { op: 'set-link'; nic: string; ifname: string; code: RunCode; set: LinkSet; mtuOf?: string; undo?: UndoEntry }
  /** RTM_NEWLINK creating a macvtap on `link`; undo recorded after success. */
  | { op: 'add-macvtap'; nic: string; ifname: string; link: string; mac: string; mode: MacvtapMode; undo: UndoEntry }
  /**
   * One ovsdb transaction: drop any port of that name, add it to the bridge with its
   * external-ids and tag, then wait for ovs-vswitchd to apply it. The undo is recorded
   * before, since a timeout leaves the outcome unknown (the undo is idempotent).
   */
  | { op: 'ovs-add-port'; nic: string; ifname: string; bridge: string; vlan?: number; externalIds: Record<string, string>; ovs: OvsTarget; undo: UndoEntry }
  /** Read the macvtap's ifindex, then open /dev/tap<ifindex> once per fd name. */
  | { op: 'open-macvtap'; nic: string; ifname: string; fdNames: string[] }
  | { op: 'open-vhost'; nic: string; path: string; fdNames: string[] };

const OVS_TIMEOUT_SEC = 5;

/** The ovsdb of these options (the system daemon's when none is named). */
export function ovsTarget(o: Pick<CommandOptions, 'ovsDb' | 'ovsTimeoutSec'>): OvsTarget {
  return { db: o.ovsDb ?? DEFAULT_OVS_DB, timeoutSec: o.ovsTimeoutSec ?? OVS_TIMEOUT_SEC };
}

type Tap = Extract<HostAction, { kind: 'tap' }>;
type Attach = Extract<HostAction, { kind: 'bridge-attach' | 'ovs-attach' }>;

/** Checks that need no change to the host: every name free, every bridge present. */
function preflight(a: HostAction, o: CommandOptions): Step[] {
  switch (a.kind) {
    case 'tap':
    case 'macvtap': return [{ op: 'ensure-absent', nic: a.nic, ifname: a.ifname }];
    case 'bridge-attach': return [{ op: 'check-bridge', nic: a.nic, bridge: a.bridge, type: 'linux' }];
    case 'ovs-attach': return [{ op: 'check-bridge', nic: a.nic, bridge: a.bridge, type: 'ovs', ovs: ovsTarget(o) }];
    case 'vhost': return [];
  }
}

function alias(vm: string | undefined, nic: string): { alias?: string } {
  return vm === undefined ? {} : { alias: ownerAlias(vm, nic) };
}

function tapSteps(a: Tap, attach: Attach | undefined, vm: string | undefined): Step[] {
  // Host-side MAC (and MTU) before enslaving: a Linux bridge takes the TAP at the bridge's MTU.
  const mtuOf = a.mtu === undefined && attach?.kind === 'bridge-attach' ? attach.bridge : undefined;
  const steps: Step[] = [
    { op: 'open-tap', nic: a.nic, ifname: a.ifname, queues: a.queues, vnetHdr: a.vnetHdr, fdNames: [...a.fdNames],
      undo: { kind: 'delete-link', nic: a.nic, ifname: a.ifname, device: 'tap' } },
    { op: 'set-link', nic: a.nic, ifname: a.ifname, code: 'NET_LINK',
      set: { address: hostSideMac(a.mac), ...(a.mtu === undefined ? {} : { mtu: a.mtu }), ...alias(vm, a.nic) }, ...(mtuOf === undefined ? {} : { mtuOf }) },
  ];
  if (attach === undefined) steps.push({ op: 'set-link', nic: a.nic, ifname: a.ifname, code: 'NET_LINK', set: { up: true } });
  return steps;
}

function bridgeSteps(a: Extract<HostAction, { kind: 'bridge-attach' }>): Step[] {
  return [{ op: 'set-link', nic: a.nic, ifname: a.ifname, code: 'NET_LINK', set: { master: a.bridge, up: true },
    undo: { kind: 'bridge-detach', nic: a.nic, ifname: a.ifname, bridge: a.bridge } }];
}

function ovsSteps(a: Extract<HostAction, { kind: 'ovs-attach' }>, o: CommandOptions): Step[] {
  const undo: UndoEntry = { kind: 'ovs-del-port', nic: a.nic, ifname: a.ifname, bridge: a.bridge, ...(o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb }) };
  return [
    { op: 'ovs-add-port', nic: a.nic, ifname: a.ifname, bridge: a.bridge, ...(a.vlan === undefined ? {} : { vlan: a.vlan }),
      externalIds: { ...a.externalIds }, ovs: ovsTarget(o), undo },
    { op: 'set-link', nic: a.nic, ifname: a.ifname, code: 'NET_LINK', set: { up: true } },
  ];
}

function macvtapSteps(a: Extract<HostAction, { kind: 'macvtap' }>, vm: string | undefined): Step[] {
  return [
    { op: 'add-macvtap', nic: a.nic, ifname: a.ifname, link: a.link, mac: a.mac, mode: a.mode,
      undo: { kind: 'delete-link', nic: a.nic, ifname: a.ifname, device: 'macvtap' } },
    { op: 'set-link', nic: a.nic, ifname: a.ifname, code: 'NET_LINK', set: { ...alias(vm, a.nic), up: true } },
    { op: 'open-macvtap', nic: a.nic, ifname: a.ifname, fdNames: [...a.fdNames] },
  ];
}

/**
 * The steps that realise `actions` (assumed valid: see validateActions): first every
 * check that changes nothing (names free, bridges present), so bad input fails before
 * anything exists; then the changes, action by action.
 */
export function stepsFor(actions: readonly HostAction[], o: CommandOptions = {}): Step[] {
  const attachOf = new Map<string, Attach>();
  for (const a of actions) if (a.kind === 'bridge-attach' || a.kind === 'ovs-attach') attachOf.set(a.ifname, a);
  const changes = actions.flatMap((a): Step[] => {
    switch (a.kind) {
      case 'tap': return tapSteps(a, attachOf.get(a.ifname), o.vm);
      case 'bridge-attach': return bridgeSteps(a);
      case 'ovs-attach': return ovsSteps(a, o);
      case 'macvtap': return macvtapSteps(a, o.vm);
      case 'vhost': return [{ op: 'open-vhost', nic: a.nic, path: '/dev/vhost-net', fdNames: [...a.fdNames] }];
    }
  });
  return [...actions.flatMap((a) => preflight(a, o)), ...changes];
}

/** The undo of one entry, in words: what the executor sends (golden files, `warden net steps`, failures). */
export function undoText(e: UndoEntry, o: Pick<CommandOptions, 'ovsTimeoutSec'> = {}): string {
  switch (e.kind) {
    case 'delete-link': return `RTM_DELLINK ${e.ifname} (by its ifindex)`;
    case 'bridge-detach': return `RTM_NEWLINK ${e.ifname} master 0 (off bridge ${e.bridge})`;
    case 'ovs-del-port': {
      const t = ovsTarget({ ...e, ...o });
      return `ovsdb unix:${t.db} transact: remove port ${e.ifname} from its bridge (timeout ${t.timeoutSec} s; ovs-vswitchd applies it on its own)`;
    }
  }
}
