/**
 * @module bench/net: host networking cost: apply+undo of one TAP NIC (Linux bridge, OVS) in a
 * throwaway netns, next to the kernel's own floor for a TAP (create + destroy), the same
 * requests sent bare, and what the former executor ran (`ip`, ovs-vsctl).
 */
import { le, n, type Benchmark, type BenchRow } from './lib.js';
import { createNetns, inNetns, netnsName, netSkipReason, type Cleanups } from '../test/net/netns.js';
import { ovsSkipReason, startPrivateOvs } from '../test/net/ovs.js';
import type { NetBenchResult } from '../test/net/bench-scenarios.js';

/** Runs `fn` with a Cleanups whose teardown runs (in reverse) when it settles. */
async function withCleanups<T>(fn: (c: Cleanups) => Promise<T>): Promise<T> {
  const fns: Array<() => void> = [];
  try {
    return await fn({ after: (f) => { fns.push(f); } });
  } finally {
    for (const f of fns.reverse()) f();
  }
}

function rows(kind: string, r: NetBenchResult, goalMs: number): BenchRow[] {
  const ovs = r.ovsVsctlMs !== undefined;
  const floor = { name: `kernel floor: TUNSETIFF, RTM_NEWLINK (${ovs ? '' : 'master, '}up), close (the kernel destroys the TAP)`, value: r.floorMs };
  const out: BenchRow[] = [
    { group: 'net', name: `apply+undo one TAP NIC on ${kind}`, value: r.applyUndoMs, unit: 'ms', baseline: floor, goal: le(goalMs, 'value') },
    { group: 'net', name: `  the same less the kernel floor (warden's own share)`, value: r.applyUndoMs - r.floorMs, unit: 'ms', goal: le(goalMs, 'value') },
    { group: 'net', name: '  closing a fresh TAP\'s fd alone (the kernel unregisters the device)', value: r.closeMs, unit: 'ms' },
    { group: 'net', name: '  apply and undo alone, without the close between them (warden\'s own time, timed directly)', value: r.ownMs, unit: 'ms',
      ...(r.bareOwnMs === undefined ? {} : { baseline: { name: 'the same requests bare, without the close', value: r.bareOwnMs } }) },
  ];
  if (!ovs) {
    out.push({ group: 'net', name: '  apply+undo', value: r.applyUndoMs, unit: 'ms', baseline: { name: 'its netlink requests and ioctl sent bare in a row', value: r.bareMs! } },
      { group: 'net', name: '  one `ip link show` spawn (what each step cost before netlink)', value: r.ipSpawnMs, unit: 'ms' });
    return out;
  }
  out.push(
    { group: 'net', name: '  warden\'s add + del transactions from a minimal JSON-RPC client, no waits (ovsdb-server)', value: r.rawNoWaitMs!, unit: 'ms' },
    { group: 'net', name: '  the same client: add, then wait until ovs-vswitchd applied it (as warden\'s apply)', value: r.rawAddWaitMs!, unit: 'ms' },
    { group: 'net', name: '  the same client: del, then wait until ovs-vswitchd applied it (warden\'s undo does not wait)', value: r.rawDelWaitMs!, unit: 'ms' },
    { group: 'net', name: '  ovs-vsctl add-port + del-port on a TAP (the former executor, waits for ovs-vswitchd)', value: r.ovsVsctlMs!, unit: 'ms' },
    { group: 'net', name: '  ovs-vsctl --no-wait add-port + del-port', value: r.ovsVsctlNoWaitMs!, unit: 'ms' },
  );
  return out;
}

export const benchmarks: Benchmark[] = [
  {
    group: 'net',
    async run() {
      const skip = netSkipReason();
      if (skip !== undefined) return skip;
      return withCleanups(async (c) => {
        const ns = createNetns(c, netnsName('b'));
        const r = await inNetns<NetBenchResult>(ns, 'bench-scenarios#benchApplyUndo', { runs: n(15, 2) });
        const out = rows('a Linux bridge', r, 5);
        out.push({ group: 'net', name: 'stepsFor: 4 NICs, x1000 (pure)', value: r.stepsForUs, unit: 'ms' });
        if (ovsSkipReason() === undefined) {
          const { db } = startPrivateOvs(c, ns, 'wdtovs0');
          out.push(...rows('Open vSwitch (userspace)', await inNetns<NetBenchResult>(ns, 'bench-scenarios#benchApplyUndo', { runs: n(15, 2), ovsDb: db }), 10));
        }
        return out;
      });
    },
  },
];
