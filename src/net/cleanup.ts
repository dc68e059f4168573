/**
 * @module net/cleanup: finds and removes a VM's leftover host devices and OVS ports by
 * their deterministic names and external-ids, without any undo log (after a crash).
 */
import { loadNative } from '../sys/index.js';
import { NetError } from './errors.js';
import { RtnlLinks, type LinkPort } from './links.js';
import { DEFAULT_IF_PREFIX, isVmIfName } from './names.js';
import { OvsdbClient, type OvsdbPort } from './ovsdb.js';
import { aliasOwner, ovsTarget } from './steps.js';
import { undoEntry, type UndoFailure } from './undo-log.js';

export interface CleanupDeps {
  /** Host links; default: a NETLINK_ROUTE socket of the addon's. */
  links?: LinkPort;
  /** Open vSwitch; default: the JSON-RPC client. */
  ovsdb?: OvsdbPort;
  ovsDb?: string;
  ovsTimeoutSec?: number;
  /** The interface prefix the VM's names were made with (names.hostIfName). */
  prefix?: string;
  /** Look at Open vSwitch too (default true; an unreachable ovsdb is reported, not an error). */
  ovs?: boolean;
  /** Ignored: accepted so that callers written for the former `ip`/ovs-vsctl executor compile unchanged. */
  runner?: unknown;
}

export interface CleanupResult {
  removed: Array<{ kind: 'ovs-port' | 'link'; name: string }>;
  ovs: 'checked' | 'unreachable' | 'skipped';
}

function vmLinks(vmName: string, links: LinkPort, prefix: string): string[] {
  let all;
  try {
    all = links.list();
  } catch (cause) {
    throw new NetError('NET_LINK', `listing host links to clean up VM ${vmName} failed`, { cause });
  }
  return all.filter((l) => isVmIfName(l.ifname, vmName, prefix) || aliasOwner(l.alias) === vmName).map((l) => l.ifname);
}

/** OVS interfaces named like the VM's devices or carrying external-ids:warden-vm=vmName; undefined when ovsdb is unreachable. */
async function vmOvsPorts(vmName: string, deps: CleanupDeps, ovsdb: OvsdbPort, prefix: string): Promise<string[] | undefined> {
  let rows;
  try {
    rows = await ovsdb.interfaces(ovsTarget(deps));
  } catch {
    return undefined;
  }
  return rows.filter((r) => isVmIfName(r.name, vmName, prefix) || r.externalIds['warden-vm'] === vmName).map((r) => r.name);
}

/**
 * Removes every OVS port and host link that belongs to `vmName`, OVS ports first (their
 * records outlive the TAP). A link belongs to the VM when hostIfName could have made its
 * name, or when its alias names the VM (applyHostActions with `vm` sets it). Safe to run
 * any time the VM is not running; idempotent.
 */
export async function cleanupVmNetwork(vmName: string, deps: CleanupDeps): Promise<CleanupResult> {
  const prefix = deps.prefix ?? DEFAULT_IF_PREFIX;
  const own = deps.links === undefined ? new RtnlLinks(loadNative()) : undefined;
  const ownOvs = deps.ovsdb === undefined ? new OvsdbClient() : undefined;
  try {
    return await cleanup(vmName, { ...deps, links: deps.links ?? own!, ovsdb: deps.ovsdb ?? ownOvs! }, prefix);
  } finally {
    own?.close();
    ownOvs?.close();
  }
}

async function cleanup(vmName: string, deps: CleanupDeps & { links: LinkPort; ovsdb: OvsdbPort }, prefix: string): Promise<CleanupResult> {
  const result: CleanupResult = { removed: [], ovs: 'skipped' };
  const failures: UndoFailure[] = [];
  const undo = async (entry: Parameters<typeof undoEntry>[0], kind: 'ovs-port' | 'link'): Promise<void> => {
    const f = await undoEntry(entry, deps);
    if (f === undefined) result.removed.push({ kind, name: entry.ifname });
    else failures.push(f);
  };
  if (deps.ovs !== false) {
    const ports = await vmOvsPorts(vmName, deps, deps.ovsdb, prefix);
    result.ovs = ports === undefined ? 'unreachable' : 'checked';
    for (const name of ports ?? []) {
      await undo({ kind: 'ovs-del-port', nic: '?', ifname: name, bridge: '?', ...(deps.ovsDb === undefined ? {} : { ovsDb: deps.ovsDb }) }, 'ovs-port');
    }
  }
  for (const name of vmLinks(vmName, deps.links, prefix)) await undo({ kind: 'delete-link', nic: '?', ifname: name, device: 'tap' }, 'link');
  if (failures.length > 0) {
    throw new NetError('NET_UNDO', `cleaning up the network of VM ${vmName} left ${failures.length} behind: ${failures.map((f) => f.entry.ifname).join(', ')}`, {
      context: { vm: vmName, failures, removed: result.removed } });
  }
  return result;
}
