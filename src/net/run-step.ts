/** @module net/run-step: runs one Step against the host, recording its undo entry in the apply state. */
import type { RunResult } from '../sys/index.js';
import type { ApplyState, NetDeps } from './apply.js';
import { NetError, type NetErrorCode } from './errors.js';
import type { Step } from './steps.js';

const MISSING_RE = /does not exist|Cannot find device/i;

async function exec(argv: string[], deps: NetDeps, code: NetErrorCode, doing: string): Promise<RunResult> {
  try {
    return await deps.runner.run(argv, { timeoutMs: 30_000 });
  } catch (cause) {
    throw new NetError(code, `${doing} failed: could not run ${argv[0]}`, { cause, context: { argv },
      suggestions: [`install ${argv[0]} (Debian: iproute2 / openvswitch-switch)`] });
  }
}

function failed(code: NetErrorCode, doing: string, argv: string[], r: RunResult, extra: Record<string, unknown> = {}, suggestions: string[] = []): NetError {
  return new NetError(code, `${doing} failed (exit ${r.code ?? r.signal})`, {
    context: { ...extra, argv, stderr: r.stderr.trim() }, suggestions });
}

export async function runStep(step: Step, state: ApplyState, deps: NetDeps): Promise<void> {
  switch (step.op) {
    case 'ensure-absent': return ensureAbsent(step, deps);
    case 'open-tap': return openTap(step, state, deps);
    case 'check-bridge': return step.type === 'linux' ? checkLinuxBridge(step, state, deps) : checkOvsBridge(step, deps);
    case 'run': return runCommand(step, state, deps);
    case 'open-macvtap': return openMacvtap(step, state, deps);
    case 'open-vhost': return openVhost(step, state, deps);
  }
}

async function ensureAbsent(step: Extract<Step, { op: 'ensure-absent' }>, deps: NetDeps): Promise<void> {
  const doing = `checking that host device ${step.ifname} (nic ${step.nic}) is free`;
  const r = await exec(step.argv, deps, 'NET_LINK', doing);
  if (r.code !== 0 && MISSING_RE.test(r.stderr)) return;
  if (r.code === 0) {
    throw new NetError('NET_TAP_EXISTS', `creating host device ${step.ifname} for nic ${step.nic} failed: a device with that name already exists`, {
      context: { ifname: step.ifname, nic: step.nic },
      suggestions: ['the VM may already be running, or a crash left it behind: "warden net cleanup VM" removes leftovers'] });
  }
  throw failed('NET_LINK', doing, step.argv, r);
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
  state.ifindex.set(step.ifname, await readIfindex(step.argv, deps, 'NET_TAP_CREATE', `reading the ifindex of TAP ${step.ifname}`));
  await state.record(step.undo);
}

async function readIfindex(argv: string[], deps: NetDeps, code: NetErrorCode, doing: string): Promise<number> {
  const r = await exec(argv, deps, code, doing);
  const ifindex = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ ifindex?: number }>)[0]?.ifindex : undefined;
  if (ifindex === undefined) throw failed(code, doing, argv, r);
  return ifindex;
}

async function checkLinuxBridge(step: Extract<Step, { op: 'check-bridge' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const doing = `checking Linux bridge ${step.bridge} for nic ${step.nic}`;
  const r = await exec(step.argv, deps, 'NET_LINK', doing);
  if (r.code !== 0 && MISSING_RE.test(r.stderr)) {
    throw new NetError('NET_BRIDGE_MISSING', `attaching nic ${step.nic} to Linux bridge ${step.bridge} failed: the bridge does not exist`, {
      context: { bridge: step.bridge, type: 'linux', nic: step.nic },
      suggestions: [`create it first (ip link add ${step.bridge} type bridge && ip link set ${step.bridge} up); qemu-warden never creates bridges`] });
  }
  if (r.code !== 0) throw failed('NET_LINK', doing, step.argv, r);
  const link = (JSON.parse(r.stdout) as Array<{ mtu?: number; linkinfo?: { info_kind?: string } }>)[0];
  const kind = link?.linkinfo?.info_kind;
  if (kind !== 'bridge') {
    throw new NetError('NET_NOT_A_BRIDGE', `attaching nic ${step.nic} to ${step.bridge} failed: it is ${kind === undefined ? 'not a bridge' : `a ${kind} device, not a Linux bridge`}`, {
      context: { bridge: step.bridge, kind: kind ?? null, nic: step.nic },
      suggestions: kind === 'openvswitch' ? ['it is an Open vSwitch bridge: give the NIC type ovs'] : [] });
  }
  if (link?.mtu !== undefined) state.bridgeMtu.set(step.bridge, link.mtu);
}

async function checkOvsBridge(step: Extract<Step, { op: 'check-bridge' }>, deps: NetDeps): Promise<void> {
  const doing = `checking Open vSwitch bridge ${step.bridge} for nic ${step.nic}`;
  const r = await exec(step.argv, deps, 'NET_OVS', doing);
  if (r.code === 0) return;
  if (r.code === 2) {
    throw new NetError('NET_BRIDGE_MISSING', `attaching nic ${step.nic} to Open vSwitch bridge ${step.bridge} failed: the bridge does not exist`, {
      context: { bridge: step.bridge, type: 'ovs', nic: step.nic },
      suggestions: [`create it first (ovs-vsctl add-br ${step.bridge}); qemu-warden never creates bridges`] });
  }
  throw failed('NET_OVS', doing, step.argv, r, { bridge: step.bridge }, ['is ovsdb-server running, and is the database socket right?']);
}

async function runCommand(step: Extract<Step, { op: 'run' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  if (step.undo !== undefined && step.undoFirst === true) await state.record(step.undo);
  const doing = `${step.code === 'NET_OVS' ? 'adding the OVS port' : step.code === 'NET_MACVTAP' ? 'creating the macvtap' : 'configuring the host link'} for nic ${step.nic}`;
  const mtu = step.mtuOf === undefined ? undefined : state.bridgeMtu.get(step.mtuOf);
  const argv = mtu === undefined ? step.argv : [...step.argv, 'mtu', String(mtu)];
  const r = await exec(argv, deps, step.code, doing);
  if (r.code !== 0) {
    if (step.code === 'NET_MACVTAP' && /Unknown device type|not supported/i.test(r.stderr)) {
      throw failed('NET_MACVTAP_UNSUPPORTED', `${doing}: this kernel has no macvtap`, argv, r, { nic: step.nic },
        ['load the macvtap module, or use a bridge NIC']);
    }
    throw failed(step.code, doing, argv, r, { nic: step.nic });
  }
  if (step.undo !== undefined && step.undoFirst !== true) await state.record(step.undo);
}

async function openMacvtap(step: Extract<Step, { op: 'open-macvtap' }>, state: ApplyState, deps: NetDeps): Promise<void> {
  const doing = `opening macvtap ${step.ifname} for nic ${step.nic}`;
  const ifindex = await readIfindex(step.argv, deps, 'NET_MACVTAP', doing);
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
