/**
 * @module net/cleanup: finds and removes a VM's leftover host devices and OVS ports by
 * their deterministic names and external-ids, without any undo log (after a crash).
 */
import type { ProcessRunner } from '../sys/index.js';
import { NetError } from './errors.js';
import { DEFAULT_IF_PREFIX, isVmIfName } from './names.js';
import { aliasOwner, ovsBase } from './steps.js';
import { undoEntry, type UndoFailure } from './undo-log.js';

export interface CleanupDeps {
  runner: ProcessRunner;
  ip?: string;
  ovsVsctl?: string;
  ovsDb?: string;
  ovsTimeoutSec?: number;
  /** The interface prefix the VM's names were made with (names.hostIfName). */
  prefix?: string;
  /** Look at Open vSwitch too (default true; an unreachable ovsdb is reported, not an error). */
  ovs?: boolean;
}

export interface CleanupResult {
  removed: Array<{ kind: 'ovs-port' | 'link'; name: string }>;
  ovs: 'checked' | 'unreachable' | 'skipped';
}

type OvsList = { headings: string[]; data: Array<[string, ['map', Array<[string, string]>]]> };

async function vmLinks(vmName: string, deps: CleanupDeps, prefix: string): Promise<string[]> {
  const argv = [deps.ip ?? 'ip', '-j', 'link', 'show'];
  const r = await deps.runner.run(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new NetError('NET_LINK', `listing host links to clean up VM ${vmName} failed`, { context: { argv, stderr: r.stderr.trim() } });
  return (JSON.parse(r.stdout) as Array<{ ifname: string; ifalias?: string }>)
    .filter((l) => isVmIfName(l.ifname, vmName, prefix) || aliasOwner(l.ifalias) === vmName)
    .map((l) => l.ifname);
}

/** OVS interfaces named like the VM's devices or carrying external-ids:warden-vm=vmName; undefined when ovsdb is unreachable. */
async function vmOvsPorts(vmName: string, deps: CleanupDeps, prefix: string): Promise<string[] | undefined> {
  const argv = [...ovsBase(deps), '--format=json', '--columns=name,external_ids', 'list', 'Interface'];
  let r;
  try {
    r = await deps.runner.run(argv, { timeoutMs: 30_000 });
  } catch {
    return undefined; // ovs-vsctl is not installed
  }
  if (r.code !== 0) return undefined;
  const list = JSON.parse(r.stdout) as OvsList;
  return list.data
    .filter(([name, [, ids]]) => isVmIfName(name, vmName, prefix) || ids.some(([k, v]) => k === 'warden-vm' && v === vmName))
    .map(([name]) => name);
}

/**
 * Removes every OVS port and host link that belongs to `vmName`, OVS ports first (their
 * records outlive the TAP). A link belongs to the VM when hostIfName could have made its
 * name, or when its alias names the VM (applyHostActions with `vm` sets it). Safe to run
 * any time the VM is not running; idempotent.
 */
export async function cleanupVmNetwork(vmName: string, deps: CleanupDeps): Promise<CleanupResult> {
  const prefix = deps.prefix ?? DEFAULT_IF_PREFIX;
  const result: CleanupResult = { removed: [], ovs: 'skipped' };
  const failures: UndoFailure[] = [];
  const undo = async (entry: Parameters<typeof undoEntry>[0], kind: 'ovs-port' | 'link'): Promise<void> => {
    const f = await undoEntry(entry, deps);
    if (f === undefined) result.removed.push({ kind, name: entry.ifname });
    else failures.push(f);
  };
  if (deps.ovs !== false) {
    const ports = await vmOvsPorts(vmName, deps, prefix);
    result.ovs = ports === undefined ? 'unreachable' : 'checked';
    for (const name of ports ?? []) {
      await undo({ kind: 'ovs-del-port', nic: '?', ifname: name, bridge: '?',
        ...(deps.ovsDb === undefined ? {} : { ovsDb: deps.ovsDb }), ...(deps.ovsVsctl === undefined ? {} : { ovsVsctl: deps.ovsVsctl }) }, 'ovs-port');
    }
  }
  for (const name of await vmLinks(vmName, deps, prefix)) await undo({ kind: 'delete-link', nic: '?', ifname: name, device: 'tap' }, 'link');
  if (failures.length > 0) {
    throw new NetError('NET_UNDO', `cleaning up the network of VM ${vmName} left ${failures.length} behind: ${failures.map((f) => f.entry.ifname).join(', ')}`, {
      context: { vm: vmName, failures, removed: result.removed } });
  }
  return result;
}
