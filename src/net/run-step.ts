/** @module net/run-step: runs one Step against the host (netlink, ovsdb, device nodes), recording its undo entry in the apply state. */
import type { ApplyState, RunDeps as NetDeps } from './apply.js';
import { NetError, type NetErrorCode } from './errors.js';
import { LinkError, type LinkInfo } from './links.js';
import { OvsdbError } from './ovsdb.js';
import type { LinkSet, Step } from './steps.js';

/** The NetError of a failed netlink request: what was being done, the errno name, the kernel's extended-ack text. */
function linkFailed(code: NetErrorCode, doing: string, cause: unknown, extra: Record<string, unknown> = {}): NetError {
  if (!(cause instanceof LinkError)) return new NetError(code, `${doing} failed`, { cause, context: extra });
  return new NetError(code, `${doing} failed (${cause.code})`, { cause,
    context: { ...extra, request: cause.request, errno: cause.code, ...(cause.detail === undefined ? {} : { detail: cause.detail }) } });
}

function ovsFailed(doing: string, cause: unknown, extra: Record<string, unknown>): NetError {
  const hint = cause instanceof OvsdbError && cause.kind === 'connect' ? ['is ovsdb-server running, and is the database socket right?']
    : cause instanceof OvsdbError && cause.kind === 'timeout' ? ['is ovs-vswitchd running? (the change waits for it to apply)'] : [];
  return new NetError('NET_OVS', `${doing} failed`, { cause, context: { ...extra, ...(cause instanceof OvsdbError ? { kind: cause.kind } : {}) }, suggestions: hint });
}

/** The link named `ifname` (undefined when absent), as a NetError `code` on any other failure. */
function getLink(deps: NetDeps, ifname: string, code: NetErrorCode, doing: string): LinkInfo | undefined {
  try {
    return deps.links.get(ifname);
  } catch (cause) {
    throw linkFailed(code, doing, cause, { ifname });
  }
}

export async function runStep(step: Step, state: ApplyState, deps: NetDeps): Promise<void> {
  switch (step.op) {
    case 'ensure-absent': return ensureAbsent(step, deps);
    case 'open-tap': return openTap(step, state, deps);
    case 'check-bridge': return step.type === 'linux' ? checkLinuxBridge(step, state, deps) : checkOvsBridge(step, deps);
    case 'set-link': return setLink(step, state, deps);
    case 'add-macvtap': return addMacvtap(step, state, deps);
    case 'ovs-add-port': return ovsAddPort(step, state, deps);
    case 'open-macvtap': return openMacvtap(step, state, deps);
    case 'open-vhost': return openVhost(step, state, deps);
  }
}

async function ensureAbsent(step: Extract<Step, { op: 'ensure-absent' }>, deps: NetDeps): Promise<void> {
  const doing = `checking that host device ${step.ifname} (nic ${step.nic}) is free`;
  if (getLink(deps, step.ifname, 'NET_LINK', doing) === undefined) return;
  throw new NetError('NET_TAP_EXISTS', `creating host device ${step.ifname} for nic ${step.nic} failed: a device with that name already exists`, {
    context: { ifname: step.ifname, nic: step.nic },
    suggestions: ['the VM may already be running, or a crash left it behind: "warden net cleanup VM" removes leftovers'] });
}

async function openTap(step: Extract<Step, { op: 'open-tap' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  let tap: { name: string; fds: number[] };
  try {
    tap = deps.native.openTap(step.ifname, step.queues, step.vnetHdr);
  } catch (cause) {
    const errno = (cause as NodeJS.ErrnoException).code;
    throw new NetError('NET_TAP_CREATE', `creating TAP ${step.ifname} for nic ${step.nic} (${step.queues} queue(s), vnet_hdr ${step.vnetHdr ? 'on' : 'off'}) failed`, {
      cause, context: { ifname: step.ifname, nic: step.nic, queues: step.queues, errno },
      suggestions: errno === 'EPERM' ? ['creating TAP devices needs CAP_NET_ADMIN: run as root'] : errno === 'ENOENT' ? ['load the tun module (/dev/net/tun is missing)'] : [] });
  }
  // The fds are ours before anything else can fail: the rollback closes them (and so the TAP).
  tap.fds.forEach((fd, i) => state.fds.set(step.fdNames[i]!, fd));
  state.ifindex.set(step.ifname, ifindexOf(deps, step.ifname, 'NET_TAP_CREATE', `reading the ifindex of TAP ${step.ifname}`));
  await state.record(step.undo);
}

function ifindexOf(deps: NetDeps, ifname: string, code: NetErrorCode, doing: string): number {
  const link = getLink(deps, ifname, code, doing);
  if (link === undefined) throw new NetError(code, `${doing} failed: the device is gone`, { context: { ifname } });
  return link.ifindex;
}

async function checkLinuxBridge(step: Extract<Step, { op: 'check-bridge'; type: 'linux' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const link = getLink(deps, step.bridge, 'NET_LINK', `checking Linux bridge ${step.bridge} for nic ${step.nic}`);
  if (link === undefined) {
    throw new NetError('NET_BRIDGE_MISSING', `attaching nic ${step.nic} to Linux bridge ${step.bridge} failed: the bridge does not exist`, {
      context: { bridge: step.bridge, type: 'linux', nic: step.nic },
      suggestions: [`create it first (ip link add ${step.bridge} type bridge && ip link set ${step.bridge} up); qemu-warden never creates bridges`] });
  }
  if (link.kind !== 'bridge') {
    throw new NetError('NET_NOT_A_BRIDGE', `attaching nic ${step.nic} to ${step.bridge} failed: it is ${link.kind === undefined ? 'not a bridge' : `a ${link.kind} device, not a Linux bridge`}`, {
      context: { bridge: step.bridge, kind: link.kind ?? null, nic: step.nic },
      suggestions: link.kind === 'openvswitch' ? ['it is an Open vSwitch bridge: give the NIC type ovs'] : [] });
  }
  state.bridgeMtu.set(step.bridge, link.mtu);
  state.bridgeIndex.set(step.bridge, link.ifindex);
}

async function checkOvsBridge(step: Extract<Step, { op: 'check-bridge'; type: 'ovs' }>, deps: NetDeps): Promise<void> {
  const doing = `checking Open vSwitch bridge ${step.bridge} for nic ${step.nic}`;
  let exists: boolean;
  try {
    exists = await deps.ovsdb.bridgeExists(step.ovs, step.bridge);
  } catch (cause) {
    throw ovsFailed(doing, cause, { bridge: step.bridge, db: step.ovs.db });
  }
  if (exists) return;
  throw new NetError('NET_BRIDGE_MISSING', `attaching nic ${step.nic} to Open vSwitch bridge ${step.bridge} failed: the bridge does not exist`, {
    context: { bridge: step.bridge, type: 'ovs', nic: step.nic },
    suggestions: [`create it first (ovs-vsctl add-br ${step.bridge}); qemu-warden never creates bridges`] });
}

async function setLink(step: Extract<Step, { op: 'set-link' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const doing = `configuring host link ${step.ifname} for nic ${step.nic}`;
  const ifindex = state.ifindex.get(step.ifname) ?? ifindexOf(deps, step.ifname, step.code, doing);
  const mtu = step.mtuOf === undefined ? undefined : state.bridgeMtu.get(step.mtuOf);
  const set: LinkSet = mtu === undefined ? step.set : { ...step.set, mtu };
  const master = set.master === undefined ? undefined : state.bridgeIndex.get(set.master) ?? ifindexOf(deps, set.master, step.code, doing);
  try {
    const { master: _bridge, ...rest } = set;
    deps.links.set(ifindex, { ...rest, ...(master === undefined ? {} : { master }) });
  } catch (cause) {
    throw linkFailed(step.code, doing, cause, { nic: step.nic, ifname: step.ifname, set });
  }
  if (step.undo !== undefined) await state.record(step.undo);
}

async function addMacvtap(step: Extract<Step, { op: 'add-macvtap' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const doing = `creating the macvtap ${step.ifname} on ${step.link} for nic ${step.nic}`;
  const lower = ifindexOf(deps, step.link, 'NET_MACVTAP', doing);
  try {
    deps.links.addMacvtap({ ifname: step.ifname, lower, mac: step.mac, mode: step.mode });
  } catch (cause) {
    if (cause instanceof LinkError && (cause.code === 'EOPNOTSUPP' || /Unknown device type|not supported/i.test(cause.detail ?? ''))) {
      throw linkFailed('NET_MACVTAP_UNSUPPORTED', `${doing}: this kernel has no macvtap`, cause, { nic: step.nic });
    }
    throw linkFailed('NET_MACVTAP', doing, cause, { nic: step.nic, link: step.link });
  }
  await state.record(step.undo);
}

async function ovsAddPort(step: Extract<Step, { op: 'ovs-add-port' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  await state.record(step.undo);
  try {
    await deps.ovsdb.addPort(step.ovs, { bridge: step.bridge, ifname: step.ifname, externalIds: step.externalIds, ...(step.vlan === undefined ? {} : { vlan: step.vlan }) });
  } catch (cause) {
    throw ovsFailed(`adding the OVS port ${step.ifname} to ${step.bridge} for nic ${step.nic}`, cause, { nic: step.nic, bridge: step.bridge, db: step.ovs.db });
  }
}

async function openMacvtap(step: Extract<Step, { op: 'open-macvtap' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const doing = `opening macvtap ${step.ifname} for nic ${step.nic}`;
  const ifindex = ifindexOf(deps, step.ifname, 'NET_MACVTAP', doing);
  await state.learnIfindex(step.ifname, ifindex);
  const path = `/dev/tap${ifindex}`;
  for (const name of step.fdNames) state.fds.set(name, checkTapOwner(await openWithRetry(path, deps, doing), step.ifname, path, deps, doing));
}

/**
 * The fd must be this macvtap's. ifindexes are counted per network namespace but /dev is
 * one: a macvtap elsewhere with the same index owns /dev/tapN (the kernel makes one node
 * per name), and QEMU would be handed another machine's network. Checked by TUNGETIFF.
 */
function checkTapOwner(fd: number, ifname: string, path: string, deps: NetDeps, doing: string): number {
  let got: string;
  try {
    got = deps.native.tapIfName(fd);
  } catch (cause) {
    deps.native.closeFd(fd);
    throw new NetError('NET_MACVTAP', `${doing}: ${path} is not a macvtap device`, { cause, context: { path } });
  }
  if (got === ifname) return fd;
  deps.native.closeFd(fd);
  throw new NetError('NET_MACVTAP', `${doing}: ${path} belongs to macvtap ${got}, not ${ifname} (the same interface index exists in another network namespace, and /dev has one node per index)`, {
    context: { path, expected: ifname, found: got }, suggestions: ['create the macvtap in the network namespace whose interface indexes /dev/tapN follow (the host\'s), or remove the other one'],
  });
}

/** /dev/tapN appears through udev (or devtmpfs) shortly after the link: retry 10× at 20 ms, as libvirt does. */
async function openWithRetry(path: string, deps: NetDeps, doing: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return deps.openDevice(path);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 9) {
        throw new NetError('NET_MACVTAP', `${doing}: opening ${path} failed`, { cause, context: { path } });
      }
      await (deps.clock?.sleep(20) ?? new Promise((res) => setTimeout(res, 20)));
    }
  }
}

async function openVhost(step: Extract<Step, { op: 'open-vhost' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  for (const name of step.fdNames) {
    try {
      state.fds.set(name, deps.openDevice(step.path));
    } catch (cause) {
      throw new NetError('NET_VHOST_UNAVAILABLE', `opening ${step.path} for nic ${step.nic} failed`, { cause,
        context: { path: step.path, nic: step.nic, errno: (cause as NodeJS.ErrnoException).code },
        suggestions: ['load the vhost_net module, or plan the NIC without vhost (hostNetFacts().vhostNet is false)'] });
    }
  }
}
