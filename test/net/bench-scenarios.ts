/** @module test/net/bench-scenarios: the net benchmark's measurements, run by child.ts inside a throwaway netns. */
import { applyHostActions, closeHostFds, stepsFor, undoHostActions } from '../../src/net/index.js';
import { NodeProcessRunner } from '../../src/sys/index.js';
import { medianMs } from '../../bench/lib.js';
import { makeBridge, nicActions, realDeps } from './scenarios.js';

/** Bench: median ms of apply+undo of one TAP NIC (Linux bridge, or OVS with ovsDb), against one `ip` spawn. */
export async function benchApplyUndo(a: { runs: number; ovsDb?: string }): Promise<{ applyUndoMs: number; ipSpawnMs: number; stepsForUs: number }> {
  const ovs = a.ovsDb !== undefined;
  if (!ovs) makeBridge('wdtbr0');
  const deps = realDeps(ovs ? { ovsDb: a.ovsDb! } : {});
  const actions = nicActions('vm-bench', 'net0', ovs ? 'wdtovs0' : 'wdtbr0', ovs ? { vlan: 7 } : undefined);
  const applyUndoMs = await medianMs(async () => {
    const net = await applyHostActions(actions, deps);
    closeHostFds(net.fds, deps.native);
    await undoHostActions(net.undo, deps);
  }, a.runs);
  const runner = new NodeProcessRunner();
  const ipSpawnMs = await medianMs(() => runner.run(['ip', '-j', 'link', 'show', 'dev', 'lo']), a.runs);
  const four = [0, 1, 2, 3].flatMap((i) => nicActions('vm-bench', `net${i}`, 'br0', i % 2 === 0 ? undefined : { vlan: i }));
  const stepsForUs = (await medianMs(() => { for (let i = 0; i < 1000; i++) stepsFor(four); }, 5)) ;
  return { applyUndoMs, ipSpawnMs, stepsForUs };
}
