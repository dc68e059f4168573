/**
 * @module net/apply: performs HostActions step by step, recording every host change in an
 * undo log (journalled as it grows), and on failure closes its fds, undoes what it did
 * and throws the NetError of the step that failed.
 */
import { loadNative, type Clock, type NativeAddon } from '../sys/index.js';
import type { HostAction } from './actions.js';
import { NetError } from './errors.js';
import { RtnlLinks, type LinkPort } from './links.js';
import { OvsdbClient, type OvsdbPort } from './ovsdb.js';
import { runStep } from './run-step.js';
import { stepsFor, type CommandOptions, type UndoEntry } from './steps.js';
import { emptyUndoLog, undoHostActions, type UndoLog } from './undo-log.js';
import { validateActions } from './validate.js';

export interface NetDeps extends CommandOptions {
  native: Pick<NativeAddon, 'openTap' | 'closeFd' | 'tapIfName'>;
  /** Host links over netlink; default: one NETLINK_ROUTE socket (the addon's) for this apply and its rollback. */
  links?: LinkPort;
  /** Open vSwitch over ovsdb's socket; default: the JSON-RPC client. */
  ovsdb?: OvsdbPort;
  /** Ignored: accepted so that callers written for the former `ip`/ovs-vsctl executor compile unchanged. */
  runner?: unknown;
  /** Opens a device node read-write with O_CLOEXEC (/dev/vhost-net, /dev/tapN); throws an errno error. */
  openDevice: (path: string) => number;
  /** For the macvtap retry while /dev/tapN appears; real timers when absent. */
  clock?: Clock;
  /**
   * Called with the whole log each time it grows (and once it is emptied by a rollback):
   * persist it so a different process can undo after a crash.
   */
  journal?: (log: UndoLog) => void | Promise<void>;
}

export interface AppliedNetwork {
  /** fd name (from the actions' fdNames) → open fd, O_CLOEXEC: pass them on explicitly, then close. */
  fds: Map<string, number>;
  undo: UndoLog;
}

/** The state one apply builds up; runStep adds to it. */
export interface ApplyState {
  fds: Map<string, number>;
  log: UndoLog;
  /** Linux bridge → MTU, learnt in preflight for `mtuOf`. */
  bridgeMtu: Map<string, number>;
  /** Linux bridge → ifindex, learnt in preflight (the master of a set-link). */
  bridgeIndex: Map<string, number>;
  /** Device name → ifindex of the instance this apply created. */
  ifindex: Map<string, number>;
  /** Appends an entry (with the device's ifindex when known) and journals the log. */
  record: (entry: UndoEntry) => Promise<void>;
  /** Learns a device's ifindex, fills it into entries recorded before, journals. */
  learnIfindex: (ifname: string, ifindex: number) => Promise<void>;
}

/** Closes every fd of the map (ignoring ones already closed) and empties it. */
export function closeHostFds(fds: Map<string, number>, native: Pick<NativeAddon, 'closeFd'>): void {
  for (const fd of fds.values()) {
    try { native.closeFd(fd); } catch { /* already closed */ }
  }
  fds.clear();
}

/**
 * Validates, then performs the actions. Bad actions throw NET_BAD_ACTION before anything
 * happens; a failed step throws its NetError after everything done so far was undone
 * (context.rollback says whether that undo was complete).
 */
export async function applyHostActions(actions: readonly HostAction[], netDeps: NetDeps): Promise<AppliedNetwork> {
  validateActions(actions, netDeps.vm);
  const own = netDeps.links === undefined ? new RtnlLinks(loadNative()) : undefined;
  // One ovsdb session for the whole apply (bridge check, port adds, a rollback's removals).
  const ownOvs = netDeps.ovsdb === undefined ? new OvsdbClient() : undefined;
  const deps: RunDeps = { ...netDeps, links: netDeps.links ?? own!, ovsdb: netDeps.ovsdb ?? ownOvs! };
  try {
    return await apply(actions, deps);
  } finally {
    own?.close();
    ownOvs?.close();
  }
}

/** NetDeps with the ports resolved, as the steps use them. */
export type RunDeps = NetDeps & { links: LinkPort; ovsdb: OvsdbPort };

async function apply(actions: readonly HostAction[], deps: RunDeps): Promise<AppliedNetwork> {
  const state: ApplyState = {
    fds: new Map(),
    log: emptyUndoLog(),
    bridgeMtu: new Map(),
    bridgeIndex: new Map(),
    ifindex: new Map(),
    record: async (entry) => {
      const ifindex = state.ifindex.get(entry.ifname);
      state.log.entries.push(ifindex === undefined ? entry : { ...entry, ifindex });
      await deps.journal?.(state.log);
    },
    learnIfindex: async (ifname, ifindex) => {
      state.ifindex.set(ifname, ifindex);
      state.log.entries = state.log.entries.map((e) => (e.ifname === ifname && e.ifindex === undefined ? { ...e, ifindex } : e));
      await deps.journal?.(state.log);
    },
  };
  try {
    for (const step of stepsFor(actions, deps)) await runStep(step, state, deps);
  } catch (err) {
    await rollback(state, deps, err);
    throw err;
  }
  return { fds: state.fds, undo: state.log };
}

async function rollback(state: ApplyState, deps: RunDeps, err: unknown): Promise<void> {
  // Closing first makes non-persistent TAPs vanish on their own; the undo then finds them gone.
  closeHostFds(state.fds, deps.native);
  let outcome: unknown = 'complete';
  try {
    await undoHostActions(state.log, deps);
    state.log.entries = [];
  } catch (undoErr) {
    outcome = undoErr instanceof NetError ? undoErr.context['failures'] : String(undoErr);
  }
  try { await deps.journal?.(state.log); } catch { /* the original error matters more */ }
  if (err instanceof NetError) (err.context as Record<string, unknown>)['rollback'] = outcome;
}
