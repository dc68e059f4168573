/** @module test/net/bench-scenarios: the net benchmark's measurements, run by child.ts inside a throwaway netns. */
import { applyHostActions, closeHostFds, RtnlLinks, stepsFor, undoHostActions } from '../../src/net/index.js';
import { loadNative, NodeProcessRunner } from '../../src/sys/index.js';
import { medianMs } from '../../bench/lib.js';
import { makeBridge, nicActions, realDeps } from './scenarios.js';

export interface NetBenchResult {
  applyUndoMs: number;
  /**
   * The kernel's own floor, the fewest syscalls that do the same: TUNSETIFF, one RTM_NEWLINK
   * (bridge: master + up), closing the fd (the kernel destroys the TAP: RCU grace periods).
   */
  floorMs: number;
  ipSpawnMs: number;
  /** OVS only: `ovs-vsctl add-port` + `del-port` on a TAP (the former executor's two processes, same waits). */
  ovsVsctlMs?: number;
  stepsForUs: number;
}

/** Bench: median ms of apply+undo of one TAP NIC (Linux bridge, or OVS with ovsDb), with same-run floors. */
export async function benchApplyUndo(a: { runs: number; ovsDb?: string }): Promise<NetBenchResult> {
  const ovs = a.ovsDb !== undefined;
  if (!ovs) makeBridge('wdtbr0');
  const deps = realDeps(ovs ? { ovsDb: a.ovsDb! } : {});
  const actions = nicActions('vm-bench', 'net0', ovs ? 'wdtovs0' : 'wdtbr0', ovs ? { vlan: 7 } : undefined);
  const applyUndoMs = await medianMs(async () => {
    const net = await applyHostActions(actions, deps);
    closeHostFds(net.fds, deps.native);
    await undoHostActions(net.undo, deps);
  }, a.runs);
  const native = loadNative();
  const links = new RtnlLinks(native);
  const bridge = ovs ? undefined : links.get('wdtbr0')!.ifindex;
  const floorMs = await medianMs(() => {
    const tap = native.openTap('wdtfloor0', 1, true);
    links.set(links.get('wdtfloor0')!.ifindex, { ...(bridge === undefined ? {} : { master: bridge }), up: true });
    for (const fd of tap.fds) native.closeFd(fd);
  }, a.runs);
  links.close();
  const runner = new NodeProcessRunner();
  const ipSpawnMs = await medianMs(() => runner.run(['ip', '-j', 'link', 'show', 'dev', 'lo']), a.runs);
  let ovsVsctlMs: number | undefined;
  if (ovs) {
    const vsctl = ['ovs-vsctl', `--db=unix:${a.ovsDb!}`, '--timeout=5'];
    ovsVsctlMs = await medianMs(async () => {
      const tap = native.openTap('wdtvsctl0', 1, true);
      try {
        await runner.run([...vsctl, 'add-port', 'wdtovs0', 'wdtvsctl0', 'tag=7']);
        await runner.run([...vsctl, '--if-exists', 'del-port', 'wdtvsctl0']);
      } finally {
        for (const fd of tap.fds) native.closeFd(fd);
      }
    }, a.runs);
  }
  const four = [0, 1, 2, 3].flatMap((i) => nicActions('vm-bench', `net${i}`, 'br0', i % 2 === 0 ? undefined : { vlan: i }));
  const stepsForUs = await medianMs(() => { for (let i = 0; i < 1000; i++) stepsFor(four); }, 5);
  return { applyUndoMs, floorMs, ipSpawnMs, stepsForUs, ...(ovsVsctlMs === undefined ? {} : { ovsVsctlMs }) };
}
