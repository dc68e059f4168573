/** @module bench/net: host networking cost: apply+undo of one TAP NIC (Linux bridge, OVS) in a throwaway netns, against one `ip` spawn. */
import { le, n, type Benchmark, type BenchRow } from './lib.js';
import { createNetns, inNetns, netnsName, netSkipReason, type Cleanups } from '../test/net/netns.js';
import { ovsSkipReason, startPrivateOvs } from '../test/net/ovs.js';

type Result = { applyUndoMs: number; ipSpawnMs: number; stepsForUs: number };

/** Runs `fn` with a Cleanups whose teardown runs (in reverse) when it settles. */
async function withCleanups<T>(fn: (c: Cleanups) => Promise<T>): Promise<T> {
  const fns: Array<() => void> = [];
  try {
    return await fn({ after: (f) => { fns.push(f); } });
  } finally {
    for (const f of fns.reverse()) f();
  }
}

function rows(kind: string, r: Result, goalMs: number): BenchRow[] {
  return [{ group: 'net', name: `apply+undo one TAP NIC on ${kind}`, value: r.applyUndoMs, unit: 'ms',
    baseline: { name: 'one `ip link show` spawn', value: r.ipSpawnMs }, goal: le(goalMs, 'value') }];
}

export const benchmarks: Benchmark[] = [
  {
    group: 'net',
    async run() {
      const skip = netSkipReason();
      if (skip !== undefined) return skip;
      return withCleanups(async (c) => {
        const ns = createNetns(c, netnsName('b'));
        const r = await inNetns<Result>(ns, 'bench-scenarios#benchApplyUndo', { runs: n(15, 2) });
        const out = rows('a Linux bridge', r, 5);
        out.push({ group: 'net', name: 'stepsFor: 4 NICs, x1000 (pure)', value: r.stepsForUs, unit: 'ms' });
        if (ovsSkipReason() === undefined) {
          const { db } = startPrivateOvs(c, ns, 'wdtovs0');
          out.push(...rows('Open vSwitch (userspace)', await inNetns<Result>(ns, 'bench-scenarios#benchApplyUndo', { runs: n(15, 2), ovsDb: db }), 10));
        }
        return out;
      });
    },
  },
];
