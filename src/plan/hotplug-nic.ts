/**
 * @module plan/hotplug-nic: a NIC hot-plug as a pure function of the running VM's allocations
 * and the NIC: the host actions (TAP on a bridge or OVS), the fds QEMU gets with getfd, and
 * the QMP steps (getfd, netdev_add, device_add), each with its inverse. The NIC comes from
 * the same code as the boot-time -netdev/-device (plan/net planNic), rendered as QMP.
 */
import type { HostAction } from '../net/index.js';
import type { Network, Spec } from '../spec/index.js';
import { PlanBuilder } from './builder.js';
import type { PlanIssue } from './errors.js';
import { builderFor, type HotplugStep, type LiveAllocations } from './hotplug.js';
import { planNic } from './net.js';
import type { Facts, HelperPlan, ManifestEntry } from './types.js';

/** What the running VM already has, NICs included (spec and hot-plugged). */
export interface NicLiveAllocations extends LiveAllocations {
  nicNames: readonly string[];
}

export interface NicAttachPlan {
  deviceId: string;
  netdevId: string;
  /** Host actions (src/net performs them with its undo log); their fds are named in `fds`. */
  actions: HostAction[];
  /** The fds QEMU receives with getfd, in step order: host-action fds by name (TAP queues), socketpair ends. */
  fds: Array<{ name: string; kind: 'host-action' | 'socketpair' }>;
  /** Helpers the NIC needs (passt for user networking), as at boot. */
  helpers: HelperPlan[];
  steps: HotplugStep[];
  manifest: ManifestEntry[];
  issues: PlanIssue[];
}

/**
 * The boot-time -netdev as netdev_add: fd numbers (argv's "fd": "N") become the getfd names
 * QEMU knows them by on the monitor. A `stream` netdev on an fd (passt's socketpair) becomes
 * the legacy `socket` netdev on that fd: QEMU 7.2's stream backend resolves its fd in a worker
 * thread with no monitor, where only numbers parse, so a getfd name ends in "connection error";
 * `socket` resolves it at once and speaks the same length-prefixed framing to passt.
 */
function byName(value: Record<string, unknown>, names: ReadonlyMap<string, string>): Record<string, unknown> {
  const addr = value['addr'] as { type?: unknown; str?: unknown } | undefined;
  if (value['type'] === 'stream' && addr?.type === 'fd') return { type: 'socket', id: value['id'], fd: names.get(String(addr.str)) ?? addr.str };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (['fd', 'vhostfd'].includes(k)) out[k] = names.get(String(v)) ?? v;
    else if (['fds', 'vhostfds'].includes(k)) out[k] = String(v).split(':').map((x) => names.get(x) ?? x).join(':');
    else out[k] = v;
  }
  return out;
}

/**
 * Plans attaching NIC `n` to the running VM `spec`: pc's root bus, or q35 behind an empty
 * reserved pcie-root-port. vhost is not hot-plugged (refused as an issue when asked).
 */
export function planNicAttach(spec: Spec, n: Network, facts: Facts, live: NicLiveAllocations): NicAttachPlan {
  const from = `networks[${n.name}]`;
  const found = builderFor(live);
  const b = found ?? new PlanBuilder('pcie.0', 0);
  if (found === null) b.issue({ code: 'PLAN_PCI_EXHAUSTED', from, message: `no free hot-plug slot: every reserved pcie-root-port (hotplugSlots: ${live.freePorts.length} free) is in use or none were reserved`, suggestion: 'set hotplugSlots in the spec (q35 reserves that many empty root ports at boot) and restart the VM, or detach a hot-plugged device' });
  if (live.nicNames.includes(n.name)) b.issue({ code: 'PLAN_DUPLICATE', from: `${from}.name`, message: `the VM already has a NIC named ${n.name}`, suggestion: 'choose another --name' });
  if (n.vhost) b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.vhost`, message: 'vhost-net is not hot-plugged (only at boot)', suggestion: 'attach it without vhost' });
  if (n.type === 'none') b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.type`, message: 'a NIC of type none has no backend to hot-plug' });
  planNic(spec, n, from, facts, b);
  const fdNames = new Map<string, string>();
  const fds: NicAttachPlan['fds'] = [];
  for (const f of b.fds) {
    if (f.kind !== 'host-action' && f.kind !== 'socketpair') continue;
    fdNames.set(String(f.target), f.name);
    fds.push({ name: f.name, kind: f.kind });
  }
  const netdevs = b.qapi.filter((q) => q.command === 'netdev_add').map((q) => byName(q.value, fdNames));
  const steps: HotplugStep[] = [
    ...fds.map((f) => ({ command: 'getfd', args: { fdname: f.name }, fd: f.name, undo: { command: 'closefd', args: { fdname: f.name } } })),
    ...netdevs.map((v) => ({ command: 'netdev_add', args: v, undo: { command: 'netdev_del', args: { id: v['id'] } } })),
    // No option ROM: nobody boots from a NIC plugged in later, and the jail binds only the ROMs the boot plan needed.
    ...b.devices.map((d) => ({ command: 'device_add', args: { ...d.value, romfile: '' }, undo: { command: 'device_del', args: { id: d.value['id'] } } })),
  ];
  return { deviceId: `nic-${n.name}`, netdevId: `net-${n.name}`, actions: b.actions, fds, helpers: b.helpers, steps, manifest: b.manifest, issues: b.issues };
}
