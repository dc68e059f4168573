/**
 * @module test/net/scenarios: host-level network scenarios, each run by child.ts inside a
 * test-created netns. They drive the real net module (real ip, ovs-vsctl, TUNSETIFF) and
 * return what they observed; the *.test.ts files assert on it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants, existsSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import {
  applyHostActions, cleanupVmNetwork, closeHostFds, hostIfName, NetError, ovsExternalIds, parseUndoLog,
  serializeUndoLog, stableMac, undoHostActions, type HostAction, type NetDeps,
} from '../../src/net/index.js';
import { loadNative, NodeProcessRunner } from '../../src/sys/index.js';

export const PREFIX = 'wdt';

export function realDeps(extra: Partial<NetDeps> = {}): NetDeps {
  return { runner: new NodeProcessRunner(), native: loadNative(), openDevice: (p) => openSync(p, constants.O_RDWR), ...extra };
}

export interface LinkObs {
  exists: boolean;
  up?: boolean;
  master?: string | null;
  mtu?: number;
  address?: string;
  tunFlags?: number;
}

export function linkObs(name: string): LinkObs {
  const r = spawnSync('ip', ['-j', '-d', 'link', 'show', 'dev', name], { encoding: 'utf8' });
  if (r.status !== 0) return { exists: false };
  const l = (JSON.parse(r.stdout) as Array<{ flags: string[]; mtu: number; address: string }>)[0]!;
  const sys = `/sys/class/net/${name}`;
  return {
    exists: true, up: l.flags.includes('UP'), mtu: l.mtu, address: l.address,
    master: existsSync(`${sys}/master`) ? basename(readlinkSync(`${sys}/master`)) : null,
    ...(existsSync(`${sys}/tun_flags`) ? { tunFlags: Number.parseInt(readFileSync(`${sys}/tun_flags`, 'utf8'), 16) } : {}),
  };
}

export function links(): string[] {
  return readdirSync('/sys/class/net').sort();
}

export function bridgePorts(bridge: string): string[] {
  return readdirSync(`/sys/class/net/${bridge}/brif`).sort();
}

function sh(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

export function makeBridge(name: string, mtu = 1500): void {
  sh(['ip', 'link', 'add', name, 'type', 'bridge']);
  sh(['ip', 'link', 'set', name, 'mtu', String(mtu), 'up']);
}

/** One TAP NIC of VM `vm`, attached to a Linux bridge (or to an OVS bridge when `ovs`). */
export function nicActions(vm: string, nic: string, bridge: string, ovs?: { vlan?: number; extra?: Record<string, string> }): HostAction[] {
  const ifname = hostIfName(vm, nic, PREFIX);
  const mac = stableMac(vm, nic);
  const tap: HostAction = { kind: 'tap', nic, ifname, queues: 1, vnetHdr: true, mac, fdNames: [`${nic}.tap0`] };
  if (ovs === undefined) return [tap, { kind: 'bridge-attach', nic, ifname, bridge }];
  return [tap, { kind: 'ovs-attach', nic, ifname, bridge, ...(ovs.vlan === undefined ? {} : { vlan: ovs.vlan }),
    externalIds: { ...ovsExternalIds(vm, nic, mac), ...ovs.extra } }];
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function errorFacts(e: unknown): { code: string; message: string; context: Record<string, unknown> } {
  if (!(e instanceof NetError)) throw e;
  return { code: e.code, message: e.message, context: e.context };
}

/** Bridge NIC: apply, observe, undo through a serialised log (twice), observe. */
export async function bridgeApplyUndo(): Promise<Record<string, unknown>> {
  makeBridge('wdtbr0', 1400);
  const multi: HostAction[] = [{ kind: 'tap', nic: 'net1', ifname: hostIfName('vm-a', 'net1', PREFIX), queues: 2, vnetHdr: true,
    mac: stableMac('vm-a', 'net1'), fdNames: ['net1.tap0', 'net1.tap1'] }, { kind: 'bridge-attach', nic: 'net1', ifname: hostIfName('vm-a', 'net1', PREFIX), bridge: 'wdtbr0' }];
  const journal: string[] = [];
  const net = await applyHostActions([...nicActions('vm-a', 'net0', 'wdtbr0'), ...multi], realDeps({ journal: (l) => { journal.push(serializeUndoLog(l)); } }));
  const names = [hostIfName('vm-a', 'net0', PREFIX), hostIfName('vm-a', 'net1', PREFIX)];
  const during = names.map(linkObs);
  const ports = bridgePorts('wdtbr0');
  const fdNames = [...net.fds.keys()];
  const log = parseUndoLog(journal[journal.length - 1]!);
  await undoHostActions(log, realDeps());
  const afterUndo = names.map(linkObs);
  await undoHostActions(log, realDeps()); // idempotent
  closeHostFds(net.fds, loadNative());
  return { names, during, ports, fdNames, journalLengths: journal.map((j) => parseUndoLog(j).entries.length), log, afterUndo,
    portsAfter: bridgePorts('wdtbr0'), linksAfter: links() };
}

/**
 * Failed starts: the second NIC names a missing bridge (caught in preflight), and the
 * second TAP gets an MTU the kernel refuses (caught after the first NIC was plumbed, so
 * the rollback runs for real). Nothing may be left and no fd leaked.
 */
export async function failedStart(): Promise<Record<string, unknown>> {
  makeBridge('wdtbr0');
  await new NodeProcessRunner().run(['true']); // the first async spawn opens libuv's own fds: not a leak
  const before = fdCount();
  const journal: number[] = [];
  const deps = realDeps({ journal: (l) => { journal.push(l.entries.length); } });
  const attempt = async (actions: HostAction[]) => {
    try {
      await applyHostActions(actions, deps);
      return 'no error';
    } catch (e) {
      return errorFacts(e);
    }
  };
  const missing = await attempt([...nicActions('vm-b', 'net0', 'wdtbr0'), ...nicActions('vm-b', 'net1', 'wdtnobr0')]);
  const journalMissing = [...journal];
  journal.length = 0;
  const [tap1, attach1] = nicActions('vm-b', 'net1', 'wdtbr0');
  const late = await attempt([...nicActions('vm-b', 'net0', 'wdtbr0'), { ...tap1!, mtu: 65535 } as HostAction, attach1!]);
  return { missing, journalMissing, late, journalLate: journal, linksAfter: links(), portsAfter: bridgePorts('wdtbr0'), fdsLeaked: fdCount() - before };
}

/** Hands the TAP fds to another process, closes ours, kill -9s it: TAP and bridge port vanish; an OVS record stays until cleanup. */
export async function killNine(a: { ovsDb?: string }): Promise<Record<string, unknown>> {
  makeBridge('wdtbr0');
  const actions = [...nicActions('vm-c', 'net0', 'wdtbr0'), ...(a.ovsDb === undefined ? [] : nicActions('vm-c', 'net1', 'wdtovs0', {}))];
  const net = await applyHostActions(actions, realDeps(a.ovsDb === undefined ? {} : { ovsDb: a.ovsDb }));
  const holder = spawn('sleep', ['1000'], { stdio: ['ignore', 'ignore', 'ignore', ...net.fds.values()] });
  closeHostFds(net.fds, loadNative());
  const name0 = hostIfName('vm-c', 'net0', PREFIX);
  const heldAfterClose = linkObs(name0).exists;
  const portsHeld = bridgePorts('wdtbr0');
  holder.kill('SIGKILL');
  await new Promise((res) => holder.on('exit', res));
  for (let i = 0; i < 100 && linkObs(name0).exists; i++) await new Promise((res) => setTimeout(res, 20));
  const ovsPortsAfterKill = a.ovsDb === undefined ? [] : ovsPorts(a.ovsDb, 'wdtovs0');
  const cleanup = await cleanupVmNetwork('vm-c', { runner: new NodeProcessRunner(), prefix: PREFIX, ...(a.ovsDb === undefined ? { ovs: false } : { ovsDb: a.ovsDb }) });
  return { heldAfterClose, portsHeld, goneAfterKill: !linkObs(name0).exists, portsAfterKill: bridgePorts('wdtbr0'),
    ovsPortsAfterKill, cleanup, ovsPortsAfterCleanup: a.ovsDb === undefined ? [] : ovsPorts(a.ovsDb, 'wdtovs0'), linksAfter: links() };
}

export function ovsPorts(db: string, bridge: string): string[] {
  const out = sh(['ovs-vsctl', `--db=unix:${db}`, 'list-ports', bridge]);
  return out === '' ? [] : out.split('\n').sort();
}

/** A value read back with `ovs-vsctl get`: bare when it needs no quoting, else a JSON-style quoted string. */
export function ovsGet(db: string, ...args: string[]): string {
  const v = sh(['ovs-vsctl', `--db=unix:${db}`, 'get', ...args]);
  return v.startsWith('"') ? JSON.parse(v) as string : v;
}

/** OVS NIC with a VLAN tag and external-ids (one with awkward characters), observed; the log goes to a file and the process exits holding its fds (a crash). */
export async function ovsApplyAndCrash(a: { ovsDb: string; logPath: string }): Promise<Record<string, unknown>> {
  const extra = { 'warden-note': 'a "quoted" value, with spaces' };
  await applyHostActions(nicActions('vm-d', 'net0', 'wdtovs0', { vlan: 42, extra }),
    realDeps({ ovsDb: a.ovsDb, journal: (l) => writeFileSync(a.logPath, serializeUndoLog(l)) }));
  const ifname = hostIfName('vm-d', 'net0', PREFIX);
  return {
    ifname, link: linkObs(ifname), ports: ovsPorts(a.ovsDb, 'wdtovs0'),
    tag: ovsGet(a.ovsDb, 'Port', ifname, 'tag'),
    bridge: sh(['ovs-vsctl', `--db=unix:${a.ovsDb}`, 'port-to-br', ifname]),
    vm: (ovsGet(a.ovsDb, 'Interface', ifname, 'external_ids:warden-vm')),
    note: (ovsGet(a.ovsDb, 'Interface', ifname, 'external_ids:warden-note')),
    mac: (ovsGet(a.ovsDb, 'Interface', ifname, 'external_ids:attached-mac')),
  };
  // Exiting without undo: the fds close with the process, the OVS record stays.
}

/**
 * Undo returns once ovsdb committed the port's removal, before ovs-vswitchd applied it; a
 * start of the same NIC right after (same port name, a new TAP) waits for that first and
 * ends attached: ofport assigned, no Interface error. Repeated, so some re-adds race the removal.
 */
export async function ovsQuickReAdd(a: { ovsDb: string; rounds: number }): Promise<Record<string, unknown>> {
  const deps = realDeps({ ovsDb: a.ovsDb });
  const actions = nicActions('vm-q', 'net0', 'wdtovs0', { vlan: 5 });
  const ifname = hostIfName('vm-q', 'net0', PREFIX);
  const seen: Array<{ ofport: string; error: string }> = [];
  for (let i = 0; i < a.rounds; i++) {
    const net = await applyHostActions(actions, deps);
    seen.push({ ofport: ovsGet(a.ovsDb, 'Interface', ifname, 'ofport'), error: ovsGet(a.ovsDb, 'Interface', ifname, 'error') });
    closeHostFds(net.fds, deps.native);
    await undoHostActions(net.undo, deps);
  }
  return { seen, portsAfter: ovsPorts(a.ovsDb, 'wdtovs0'), linksAfter: links() };
}

/** A different process undoes from the log file. */
export async function undoFromFile(a: { ovsDb: string; logPath: string }): Promise<Record<string, unknown>> {
  const log = parseUndoLog(readFileSync(a.logPath, 'utf8'));
  const portsBefore = ovsPorts(a.ovsDb, 'wdtovs0');
  await undoHostActions(log, realDeps());
  await undoHostActions(log, realDeps());
  return { entries: log.entries, portsBefore, portsAfter: ovsPorts(a.ovsDb, 'wdtovs0'), linksAfter: links() };
}

/** A missing OVS bridge and an unreachable ovsdb are clear errors that leave nothing behind. */
export async function ovsErrors(a: { ovsDb: string }): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [key, db, bridge] of [['missing', a.ovsDb, 'wdtnoovs'], ['unreachable', '/tmp/warden-net-nonexistent/db.sock', 'wdtovs0']] as const) {
    try {
      await applyHostActions(nicActions('vm-e', 'net0', bridge, {}), realDeps({ ovsDb: db }));
      out[key] = 'no error';
    } catch (e) {
      out[key] = errorFacts(e);
    }
  }
  return { ...out, linksAfter: links(), ports: ovsPorts(a.ovsDb, 'wdtovs0') };
}

/**
 * Devices named by another scheme (the planner's `wdt-<hash>-<index>`) are still found by
 * cleanup through their alias; a device of another VM is left alone.
 */
export async function cleanupByAlias(): Promise<Record<string, unknown>> {
  makeBridge('wdtbr0');
  const tap = (vm: string, ifname: string): HostAction[] => [
    { kind: 'tap', nic: 'net0', ifname, queues: 1, vnetHdr: true, mac: stableMac(vm, 'net0'), fdNames: ['net0.tap0'] },
    { kind: 'bridge-attach', nic: 'net0', ifname, bridge: 'wdtbr0' }];
  const mine = await applyHostActions(tap('vm-f', 'wdt-1a2b3c4d-0'), realDeps({ vm: 'vm-f' }));
  const other = await applyHostActions(tap('vm-f2', 'wdt-99999999-0'), realDeps({ vm: 'vm-f2' }));
  try {
    const alias = spawnSync('ip', ['-j', 'link', 'show', 'dev', 'wdt-1a2b3c4d-0'], { encoding: 'utf8' }).stdout;
    const cleanup = await cleanupVmNetwork('vm-f', { runner: new NodeProcessRunner(), prefix: PREFIX, ovs: false });
    return { alias: (JSON.parse(alias) as Array<{ ifalias?: string }>)[0]?.ifalias, cleanup, linksAfter: links(), portsAfter: bridgePorts('wdtbr0') };
  } finally {
    closeHostFds(mine.fds, loadNative());
    closeHostFds(other.fds, loadNative());
  }
}

/** A veth pair inside the netns: `a` for macvtaps to sit on, `b` the peer with `peerIp`. */
export function makeVeth(a: string, b: string, peerIp?: string): void {
  sh(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  sh(['ip', 'link', 'set', a, 'up']);
  sh(['ip', 'link', 'set', b, 'up']);
  if (peerIp !== undefined) sh(['ip', 'addr', 'add', peerIp, 'dev', b]);
}

/**
 * macvtap on a veth: created, opened once per queue through /dev/tap<ifindex>, owned by
 * alias; it survives closing its fds (unlike a TAP), so undo and cleanup must remove it.
 * Returns {unsupported} when this kernel cannot make macvtaps.
 */
export async function macvtapHost(): Promise<Record<string, unknown>> {
  makeVeth('wdtv0', 'wdtv1');
  const ifname = hostIfName('vm-m', 'net0', PREFIX);
  const action: HostAction = { kind: 'macvtap', nic: 'net0', ifname, link: 'wdtv0', mode: 'bridge', mac: stableMac('vm-m', 'net0'), queues: 2, fdNames: ['q0', 'q1'] };
  let net;
  try {
    net = await applyHostActions([action], realDeps({ vm: 'vm-m' }));
  } catch (e) {
    if (e instanceof NetError && e.code === 'NET_MACVTAP_UNSUPPORTED') return { unsupported: String(e.context['detail'] ?? e.context['errno']) };
    throw e;
  }
  const info = (JSON.parse(sh(['ip', '-j', '-d', 'link', 'show', 'dev', ifname])) as Array<{ ifalias?: string; link?: string; linkinfo?: { info_kind?: string; info_data?: { mode?: string } } }>)[0]!;
  const during = { ...linkObs(ifname), kind: info.linkinfo?.info_kind, mode: info.linkinfo?.info_data?.mode, lower: info.link, alias: info.ifalias };
  const fds = [...net.fds.values()];
  const fdTargets = fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`));
  closeHostFds(net.fds, loadNative());
  const survivesClose = linkObs(ifname).exists;
  const cleanup = await cleanupVmNetwork('vm-m', { runner: new NodeProcessRunner(), prefix: PREFIX, ovs: false });
  await undoHostActions(net.undo, realDeps()); // after cleanup: finds it gone, still succeeds
  return { ifname, during, fdTargets, survivesClose, cleanup, linksAfter: links() };
}

/**
 * Another network namespace (`other`) holds a macvtap with the interface index our next
 * macvtap will get, made first, so /dev/tap<index> is its node: opening it for our VM must
 * be refused, and the start rolled back, rather than hand QEMU another machine's network.
 */
export async function macvtapForeignNode(args: { other: string }): Promise<Record<string, unknown>> {
  makeVeth('wdtf0', 'wdtf1');
  // interface indexes are handed out in order (and not reused at once): the next one is the probe's last + 1
  sh(['ip', 'link', 'add', 'wdtfp0', 'type', 'veth', 'peer', 'name', 'wdtfp1']);
  const next = Math.max(...['wdtfp0', 'wdtfp1'].map((n) => Number(readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8')))) + 1;
  sh(['ip', 'link', 'del', 'wdtfp0']);
  sh(['ip', '-n', args.other, 'link', 'add', 'wdto0', 'type', 'veth', 'peer', 'name', 'wdto1']);
  const decoy = spawnSync('ip', ['-n', args.other, 'link', 'add', 'link', 'wdto0', 'name', 'wdtdecoy', 'index', String(next), 'type', 'macvtap'], { encoding: 'utf8' });
  if (decoy.status !== 0) return { unsupported: decoy.stderr.trim() };
  const ifname = hostIfName('vm-f', 'net0', PREFIX);
  const action: HostAction = { kind: 'macvtap', nic: 'net0', ifname, link: 'wdtf0', mode: 'bridge', mac: stableMac('vm-f', 'net0'), queues: 1, fdNames: ['q0'] };
  let error: Record<string, unknown> | null = null;
  try {
    const net = await applyHostActions([action], realDeps({ vm: 'vm-f' }));
    const got = loadNative().tapIfName(net.fds.get('q0')!);
    closeHostFds(net.fds, loadNative());
    await undoHostActions(net.undo, realDeps());
    return { next, handedOut: got };
  } catch (e) {
    if (!(e instanceof NetError)) throw e;
    error = { code: e.code, message: e.message, context: e.context };
  }
  const fdsAfter = readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return '?'; } });
  return { next, error, ours: linkObs(ifname).exists, tapFdsOpen: fdsAfter.filter((p) => p.startsWith('/dev/tap')),
    decoy: spawnSync('ip', ['-n', args.other, '-o', 'link', 'show', 'wdtdecoy'], { encoding: 'utf8' }).status === 0 };
}

/** A stale undo log (its QEMU died, the VM started again under the same names) must not touch the new instance. */
export async function staleLog(): Promise<Record<string, unknown>> {
  makeBridge('wdtbr0');
  const actions = nicActions('vm-s', 'net0', 'wdtbr0');
  const ifname = hostIfName('vm-s', 'net0', PREFIX);
  const first = await applyHostActions(actions, realDeps());
  closeHostFds(first.fds, loadNative()); // the first QEMU is gone, and its TAP with it
  const second = await applyHostActions(actions, realDeps());
  try {
    await undoHostActions(first.undo, realDeps());
    const afterStale = { link: linkObs(ifname), ports: bridgePorts('wdtbr0') };
    await undoHostActions(second.undo, realDeps());
    return { ifindexes: [first.undo.entries[0]?.ifindex, second.undo.entries[0]?.ifindex], afterStale, afterSecond: linkObs(ifname) };
  } finally {
    closeHostFds(second.fds, loadNative());
  }
}
