/** @module test/net/bench-scenarios: the net benchmark's measurements, run by child.ts inside a throwaway netns. */
import { connect, type Socket } from 'node:net';
import { applyHostActions, closeHostFds, hostSideMac, RtnlLinks, stepsFor, undoHostActions } from '../../src/net/index.js';
import { loadNative, NodeProcessRunner } from '../../src/sys/index.js';
import { median, medianMs } from '../../bench/lib.js';
import { makeBridge, nicActions, realDeps } from './scenarios.js';

export interface NetBenchResult {
  applyUndoMs: number;
  /**
   * The kernel's own floor, the fewest syscalls that do the same: TUNSETIFF, one RTM_NEWLINK
   * (bridge: master + up), closing the fd (the kernel destroys the TAP: RCU grace periods).
   */
  floorMs: number;
  /** Closing a fresh TAP's only fd, alone: the kernel's unregister of the device. */
  closeMs: number;
  /** Linux bridge only: the very netlink requests and ioctl that apply+undo makes, issued bare in a row (no step list, no undo log). */
  bareMs?: number;
  /** apply and undo alone, less the close between them (the kernel's unregister): warden's own time, measured directly. */
  ownMs: number;
  /** Linux bridge only: the bare requests less the close. */
  bareOwnMs?: number;
  ipSpawnMs: number;
  /** OVS only: `ovs-vsctl add-port` + `del-port` on a TAP (the former executor's two processes, same waits). */
  ovsVsctlMs?: number;
  /** OVS only: the same with `--no-wait` (no wait for ovs-vswitchd). */
  ovsVsctlNoWaitMs?: number;
  /** OVS only: warden's transactions sent by a minimal JSON-RPC client: add + del, no waits (ovsdb-server's own cost). */
  rawNoWaitMs?: number;
  /** OVS only: the same, waiting after the add until ovs-vswitchd applied it (what warden's apply does). */
  rawAddWaitMs?: number;
  /** OVS only: ovs-vswitchd applying the removal, seen from a client that waits for it (the del-port wait warden no longer makes). */
  rawDelWaitMs?: number;
  stepsForUs: number;
}

/** Splits ovsdb's undelimited stream of JSON texts (only objects and arrays come). */
function jsonEnd(b: string): number {
  let depth = 0;
  let str = false;
  let esc = false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (str) { if (esc) esc = false; else if (c === '\\') esc = true; else if (c === '"') str = false; } else if (c === '"') str = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}

type Reply = { result?: unknown; error?: unknown };

/** The smallest JSON-RPC client for ovsdb that can send warden's transactions and wait for cur_cfg: the raw baseline. */
class RawOvsdb {
  private buf = '';
  private id = 1;
  private readonly waiting = new Map<number, (m: Reply) => void>();
  private readonly onUpdate: Array<() => void> = [];
  curCfg = -1;

  private constructor(private readonly s: Socket) {
    s.setEncoding('utf8').on('data', (x: string) => {
      this.buf += x;
      for (let end = jsonEnd(this.buf); end > 0; end = jsonEnd(this.buf)) {
        const m = JSON.parse(this.buf.slice(0, end)) as { id?: number; method?: string; params?: unknown[] } & Reply;
        this.buf = this.buf.slice(end).trimStart();
        if (m.method === 'update') this.noteCfg(m.params?.[1]);
        else if (m.method === 'echo') s.write(JSON.stringify({ id: m.id, result: m.params, error: null }));
        else if (typeof m.id === 'number') { this.waiting.get(m.id)?.(m); this.waiting.delete(m.id); }
      }
    });
  }

  static open(path: string): Promise<RawOvsdb> {
    return new Promise((resolve, reject) => { const s = connect(path).once('connect', () => resolve(new RawOvsdb(s))).once('error', reject); });
  }

  noteCfg(u: unknown): void {
    for (const row of Object.values((u as { Open_vSwitch?: Record<string, { new?: { cur_cfg?: number } }> })?.Open_vSwitch ?? {})) {
      if (typeof row.new?.cur_cfg === 'number') this.curCfg = Math.max(this.curCfg, row.new.cur_cfg);
    }
    for (const f of this.onUpdate.splice(0)) f();
  }

  request(method: string, params: unknown[]): Promise<Reply> {
    const id = this.id++;
    this.s.write(JSON.stringify({ method, params, id }));
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  async transact(ops: unknown[]): Promise<Array<{ rows?: Array<Record<string, unknown>>; error?: string }>> {
    const r = await this.request('transact', ['Open_vSwitch', ...ops]);
    const results = r.result as Array<{ error?: string }>;
    const bad = results.find((x) => x !== null && typeof x.error === 'string');
    if (bad !== undefined) throw new Error(`ovsdb: ${bad.error}`);
    return results;
  }

  async monitorCfg(): Promise<void> {
    this.noteCfg((await this.request('monitor', ['Open_vSwitch', 'cfg', { Open_vSwitch: { columns: ['cur_cfg'] } }])).result);
  }

  async cfgReached(target: number): Promise<void> {
    while (this.curCfg < target) await new Promise<void>((resolve) => this.onUpdate.push(resolve));
  }

  /** Until ovs-vswitchd has applied every change committed so far. */
  async settle(): Promise<void> {
    const [sel] = await this.transact([{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] }]);
    await this.cfgReached(sel!.rows![0]!['next_cfg'] as number);
  }

  close(): void {
    this.s.destroy();
  }
}

const BUMP = [
  { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
  { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
];

/** Bench: median ms of apply+undo of one TAP NIC (Linux bridge, or OVS with ovsDb), with same-run floors. */
export async function benchApplyUndo(a: { runs: number; ovsDb?: string }): Promise<NetBenchResult> {
  const ovs = a.ovsDb !== undefined;
  if (!ovs) makeBridge('wdtbr0');
  const deps = realDeps(ovs ? { ovsDb: a.ovsDb! } : {});
  const actions = nicActions('vm-bench', 'net0', ovs ? 'wdtovs0' : 'wdtbr0', ovs ? { vlan: 7 } : undefined);
  const native = loadNative();
  const links = new RtnlLinks(native);
  const raw = ovs ? await RawOvsdb.open(a.ovsDb!) : undefined;
  await raw?.monitorCfg();
  const bridge = ovs ? undefined : links.get('wdtbr0')!.ifindex;
  const tap = actions[0] as Extract<(typeof actions)[number], { kind: 'tap' }>;

  const applyUndo = async () => {
    const t0 = performance.now();
    const net = await applyHostActions(actions, deps);
    const t1 = performance.now();
    closeHostFds(net.fds, deps.native);
    const t2 = performance.now();
    await undoHostActions(net.undo, deps);
    return (t1 - t0) + (performance.now() - t2);
  };
  const floor = () => {
    const t = native.openTap('wdtfloor0', 1, true);
    links.set(links.get('wdtfloor0')!.ifindex, { ...(bridge === undefined ? {} : { master: bridge }), up: true });
    for (const fd of t.fds) native.closeFd(fd);
  };
  const close = () => {
    const t = native.openTap('wdtclose0', 1, true);
    const t0 = performance.now();
    for (const fd of t.fds) native.closeFd(fd);
    return performance.now() - t0;
  };
  /** What apply+undo sends on a Linux bridge, bare: 2 preflight GETLINKs, TUNSETIFF, GETLINK, NEWLINK (MAC, MTU), NEWLINK (master, up), close, the undo's 2 GETLINKs. */
  const bare = () => {
    const t0 = performance.now();
    links.get(tap.ifname);
    const br = links.get('wdtbr0')!;
    const t = native.openTap(tap.ifname, 1, true);
    const ifindex = links.get(tap.ifname)!.ifindex;
    links.set(ifindex, { address: hostSideMac(tap.mac), mtu: br.mtu });
    links.set(ifindex, { master: br.ifindex, up: true });
    const t1 = performance.now();
    for (const fd of t.fds) native.closeFd(fd);
    const t2 = performance.now();
    links.get(tap.ifname);
    links.get(tap.ifname);
    return (t1 - t0) + (performance.now() - t2);
  };
  /** warden's add and del transactions from a minimal client; waits after the add and/or the del as asked. */
  const rawCycle = async (waitAdd: boolean, waitDel: boolean): Promise<{ add: number; del: number }> => {
    const t = native.openTap('wdtraw0', 1, true);
    try {
      const ids = ['map', Object.entries((actions[1] as { externalIds: Record<string, string> }).externalIds).sort()];
      let t0 = performance.now();
      const added = await raw!.transact([
        { op: 'insert', table: 'Interface', row: { name: 'wdtraw0', external_ids: ids }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name: 'wdtraw0', interfaces: ['named-uuid', 'iface'], tag: 7 }, 'uuid-name': 'port' },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', 'wdtovs0']], mutations: [['ports', 'insert', ['set', [['named-uuid', 'port']]]]] },
        ...BUMP]);
      if (waitAdd) await raw!.cfgReached(added[4]!.rows![0]!['next_cfg'] as number);
      const add = performance.now() - t0;
      t0 = performance.now();
      const [sel] = await raw!.transact([{ op: 'select', table: 'Port', where: [['name', '==', 'wdtraw0']], columns: ['_uuid'] }]);
      const removed = await raw!.transact([{ op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'delete', ['set', sel!.rows!.map((r) => r['_uuid'])]]] }, ...BUMP]);
      if (waitDel) await raw!.cfgReached(removed[2]!.rows![0]!['next_cfg'] as number);
      return { add, del: performance.now() - t0 };
    } finally {
      for (const fd of t.fds) native.closeFd(fd);
    }
  };

  const runner = new NodeProcessRunner();
  const vsctl = ['ovs-vsctl', `--db=unix:${a.ovsDb}`, '--timeout=5'];
  const vsctlCycle = async (noWait: boolean) => {
    const t = native.openTap('wdtvsctl0', 1, true);
    try {
      const w = noWait ? ['--no-wait'] : [];
      await runner.run([...vsctl, ...w, 'add-port', 'wdtovs0', 'wdtvsctl0', 'tag=7']);
      await runner.run([...vsctl, ...w, '--if-exists', 'del-port', 'wdtvsctl0']);
    } finally {
      for (const fd of t.fds) native.closeFd(fd);
    }
  };

  // Interleaved round by round. OVS: ovs-vswitchd applies a removal after warden (and the
  // raw client without a wait) returned; each measurement starts once it has caught up
  // (untimed), so one is not charged with the previous one's leftover work.
  const m: Record<string, number[]> = { applyUndo: [], own: [], floor: [], close: [], bare: [], bareOwn: [], rawNoWait: [], rawAddWait: [], rawDelWait: [], vsctl: [], vsctlNoWait: [] };
  /** Times fn into m[k]; a number it returns (its time less the close) goes to m[part]. */
  const timed = async (k: string, fn: () => unknown, keep: boolean, part?: string) => {
    await raw?.settle();
    const t0 = performance.now();
    const less = await fn();
    if (keep) m[k]!.push(performance.now() - t0);
    if (keep && part !== undefined) m[part]!.push(less as number);
  };
  for (let round = 0; round <= a.runs; round++) {
    const keep = round > 0;
    await timed('applyUndo', applyUndo, keep, 'own');
    await timed('floor', floor, keep);
    await raw?.settle();
    const c = close();
    if (keep) m['close']!.push(c);
    if (!ovs) await timed('bare', bare, keep, 'bareOwn');
    if (ovs) {
      await raw!.settle();
      const noWait = await rawCycle(false, false);
      await raw!.settle();
      const wait = await rawCycle(true, true);
      if (keep) {
        m['rawNoWait']!.push(noWait.add + noWait.del);
        m['rawAddWait']!.push(wait.add);
        m['rawDelWait']!.push(wait.del);
      }
      await timed('vsctl', () => vsctlCycle(false), keep);
      await timed('vsctlNoWait', () => vsctlCycle(true), keep);
    }
  }
  links.close();
  raw?.close();
  const ipSpawnMs = await medianMs(() => runner.run(['ip', '-j', 'link', 'show', 'dev', 'lo']), a.runs);
  const four = [0, 1, 2, 3].flatMap((i) => nicActions('vm-bench', `net${i}`, 'br0', i % 2 === 0 ? undefined : { vlan: i }));
  const stepsForUs = await medianMs(() => { for (let i = 0; i < 1000; i++) stepsFor(four); }, 5);
  const md = (k: string) => median(m[k]!);
  return {
    applyUndoMs: md('applyUndo'), ownMs: md('own'), floorMs: md('floor'), closeMs: md('close'), ipSpawnMs, stepsForUs,
    ...(ovs ? { ovsVsctlMs: md('vsctl'), ovsVsctlNoWaitMs: md('vsctlNoWait'), rawNoWaitMs: md('rawNoWait'), rawAddWaitMs: md('rawAddWait'), rawDelWaitMs: md('rawDelWait') }
      : { bareMs: md('bare'), bareOwnMs: md('bareOwn') }),
  };
}
