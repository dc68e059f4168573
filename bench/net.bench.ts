/**
 * @module bench/net: host networking cost: apply+undo of one TAP NIC (Linux bridge, OVS) in a
 * throwaway netns, next to the kernel's own floor for a TAP (create + destroy) and to the
 * processes the former executor ran (`ip`, ovs-vsctl).
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
  const floor = { name: `kernel floor: TUNSETIFF, RTM_NEWLINK (${r.ovsVsctlMs === undefined ? 'master, ' : ''}up), close (the kernel destroys the TAP)`, value: r.floorMs };
  return [
    { group: 'net', name: `apply+undo one TAP NIC on ${kind}`, value: r.applyUndoMs, unit: 'ms', baseline: floor, goal: le(goalMs, 'value') },
    { group: 'net', name: `  the same less the kernel floor (warden's own share)`, value: r.applyUndoMs - r.floorMs, unit: 'ms', goal: le(goalMs, 'value') },
    ...(r.ovsVsctlMs === undefined ? [{ group: 'net', name: '  one `ip link show` spawn (what each step cost before netlink)', value: r.ipSpawnMs, unit: 'ms' }]
      : [{ group: 'net', name: '  ovs-vsctl add-port + del-port on a TAP (the former executor)', value: r.ovsVsctlMs, unit: 'ms' }]),
  ];
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
