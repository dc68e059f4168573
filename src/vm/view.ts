/** @module vm/view: what list and inspect show, built from a record, its plan and the outside view of QEMU. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fs } from '../sys/index.js';
import { allowedActions } from './machine.js';
import { outsideView, type OutsideView } from './outside.js';
import { isAlive, procStatus } from './proc.js';
import type { ForwardInfo, VmRecord } from './record.js';
import { guestInfo, type GuestInfo } from './agent.js';
import { vmFactPaths } from './facts.js';
import type { StateStore } from './store.js';
import { formatHotplugDevices, hotplugDevices, type HotplugDeviceView } from './hotplug-view.js';

export interface VmSummary {
  name: string;
  phase: string;
  pid: number | null;
  uid: number | null;
  accel: string | null;
  startedAt: string | null;
  lastExit: string | null;
  /** User-mode forwards of the running VM with their host ports (host: 0 resolved), else null. */
  forwards: ForwardInfo[] | null;
}

export function summarize(rec: VmRecord): VmSummary {
  return {
    name: rec.name, phase: rec.phase, pid: rec.run?.qemu.pid ?? null, uid: rec.run?.uid ?? null, accel: rec.run?.accel ?? null,
    startedAt: rec.run?.startedAt ?? null, lastExit: rec.lastExit === undefined ? null : lastExitText(rec.lastExit),
    forwards: rec.run?.forwards ?? null,
  };
}

/** "reason: detail", without saying the reason twice ("stopped: stopped on request ..."). */
function lastExitText(e: NonNullable<VmRecord['lastExit']>): string {
  return e.detail.startsWith(e.reason) ? e.detail : `${e.reason}: ${e.detail}`;
}

export function formatTable(rows: VmSummary[]): string {
  const head = ['NAME', 'PHASE', 'PID', 'UID', 'ACCEL', 'LAST EXIT'];
  const body = rows.map((r) => [r.name, r.phase, String(r.pid ?? '-'), String(r.uid ?? '-'), r.accel ?? '-', r.lastExit ?? '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export interface Inspection {
  name: string;
  phase: string;
  allowedActions: readonly string[];
  specFile: string | null;
  spec: Record<string, unknown>;
  /** argvTrace (each argument's spec field) and fds are there for plans made since they were stored. */
  plan: { argv: string[]; argvTrace?: unknown[]; fds?: unknown[]; manifest: unknown[]; jail: unknown } | null;
  run: VmRecord['run'] | null;
  process: OutsideView | null;
  protectionsOff: string[];
  lastExit: VmRecord['lastExit'] | null;
  warnings: string[];
  /** The VM's log writer while it runs: its pid, whether it is alive, stopped (SIGSTOP: QEMU blocks once a log pipe is full), its uid. */
  logWriter: { pid: number; alive: boolean; stopped: boolean; uid: number | null } | null;
  paths: { dir: string; serialLog: string; qmpSocket: string; serialSocket: string; qemuLog: string };
  /** What the guest agent reports (spec guestAgent, while running): the OS and NICs, or why not. */
  guest: GuestInfo | { error: string } | null;
  /** Helpers in their own jails (passt ...), each seen from outside; a dead one while the VM runs is reported. */
  helpers: Array<{ kind: string; from: string; jailName: string; pid: number; uid: number; alive: boolean; process: OutsideView | null }>;
  /** Devices hot-plugged into the current run: where each came from (live-only or persisted) and when (vm/hotplug-view). */
  hotplugged: HotplugDeviceView[];
}

export async function inspectRecord(fs: Fs, store: StateStore, rec: VmRecord): Promise<Inspection> {
  const p = store.paths(rec.name);
  let plan: Inspection['plan'] = null;
  try {
    const v = JSON.parse(readFileSync(join(p.dir, 'plan.json'), 'utf8')) as { argv: string[]; argvTrace?: unknown[]; fds?: unknown[]; manifest: unknown[]; jail: unknown };
    plan = { argv: v.argv, ...(v.argvTrace ? { argvTrace: v.argvTrace } : {}), ...(v.fds ? { fds: v.fds } : {}), manifest: v.manifest, jail: v.jail };
  } catch { /* never planned */ }
  const proc = rec.run === undefined ? null : await outsideView(fs, rec.run.qemu.pid);
  return {
    name: rec.name, phase: rec.phase, allowedActions: allowedActions(rec.phase), specFile: rec.specFile ?? null, spec: rec.spec, plan,
    run: rec.run ?? null, process: proc, protectionsOff: rec.run?.protectionsOff ?? [], lastExit: rec.lastExit ?? null,
    warnings: rec.warnings ?? [], logWriter: rec.run === undefined ? null : await logWriterOf(fs, rec),
    paths: { dir: p.dir, serialLog: p.serialLog, qmpSocket: p.qmpSocket, serialSocket: p.serialSocket, qemuLog: p.qemuLog },
    guest: await guestOf(store, rec),
    helpers: await Promise.all((rec.helpers ?? []).map(async (h) => {
      const alive = await isAlive(fs, h.proc);
      return { kind: h.kind, from: h.from, jailName: h.jailName, pid: h.proc.pid, uid: h.uid, alive, process: alive ? await outsideView(fs, h.proc.pid) : null };
    })),
    hotplugged: hotplugDevices(rec),
  };
}

/** The guest agent's view, where the spec has one and QEMU runs; an agent that does not answer is said, not fatal. */
async function guestOf(store: StateStore, rec: VmRecord): Promise<Inspection['guest']> {
  if (rec.spec['guestAgent'] !== true || rec.run === undefined || rec.phase !== 'running') return null;
  try {
    return await guestInfo(vmFactPaths(store.root, rec.name).guestAgentSocket!);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function logWriterOf(fs: Fs, rec: VmRecord): Promise<Inspection['logWriter']> {
  const id = rec.run?.logd;
  if (id === undefined) return null;
  const alive = await isAlive(fs, id);
  const status = alive ? await procStatus(fs, id.pid) : null;
  const uid = Number(status?.['Uid']?.split(/\s+/)[0] ?? Number.NaN);
  const stopped = /^[tT]/.test(status?.['State'] ?? '');
  return { pid: id.pid, alive, stopped, uid: Number.isFinite(uid) ? uid : null };
}

export function formatInspection(i: Inspection): string {
  const lines = [`VM ${i.name}: ${i.phase}`, `  allowed now: ${i.allowedActions.join(', ')}`];
  if (i.specFile) lines.push(`  spec: ${i.specFile}`);
  if (i.run) {
    lines.push(`  QEMU pid ${i.run.qemu.pid} as uid ${i.run.uid}:${i.run.gid}, accel ${i.run.accel}, since ${i.run.startedAt}`);
    if (i.run.cgroups.length > 0) lines.push(`  cgroups: ${i.run.cgroups.join(', ')}`);
    for (const f of i.run.forwards ?? []) lines.push(`  forward: ${f.proto} ${f.hostAddress}:${f.host} -> guest port ${f.guest} (${f.network})`);
  }
  if (i.process) {
    const p = i.process;
    lines.push(`  seen from outside: CapEff ${p.capEff}, NoNewPrivs ${p.noNewPrivs ? 1 : 0}, Seccomp ${p.seccomp}, own namespaces: ${p.ownNamespaces.join(' ') || 'none'}`);
    // QEMU holds some files twice (the passed fd and its fdset dup): each path once, in fd order
    lines.push(`  open files: ${[...new Set(Object.values(p.fds).filter((f) => f.startsWith('/')))].join(', ') || 'none'}`);
  }
  lines.push(...formatHotplugDevices(i.hotplugged ?? []));
  lines.push(`  protections off: ${i.run ? (i.protectionsOff.length === 0 ? 'none' : i.protectionsOff.join('; ')) : '(not running)'}`);
  if (i.lastExit) lines.push(`  last stopped: ${i.lastExit.reason} at ${i.lastExit.at}: ${i.lastExit.detail}`);
  for (const w of i.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  serial log: ${i.paths.serialLog}`);
  if (i.logWriter) {
    const w = i.logWriter;
    lines.push(!w.alive ? `  log writer: pid ${w.pid} is gone: the logs are no longer written until the VM restarts`
      : w.stopped ? `  log writer: pid ${w.pid} as uid ${w.uid ?? '?'} is STOPPED: QEMU freezes once a log pipe is full (kill -CONT ${w.pid})`
        : `  log writer: pid ${w.pid} as uid ${w.uid ?? '?'}`);
  }
  if (i.guest !== null && 'error' in i.guest) lines.push(`  guest agent: ${i.guest.error}`);
  else if (i.guest !== null) {
    const os = i.guest.os;
    if (os !== null) lines.push(`  guest OS: ${os.name || '?'}${os.kernel ? `, kernel ${os.kernel}` : ''}${os.machine ? ` (${os.machine})` : ''}`);
    const addrs = i.guest.nics.flatMap((n) => n.addresses.filter((a) => !a.address.startsWith('127.') && a.address !== '::1').map((a) => `${n.name} ${a.address}`));
    lines.push(`  guest addresses: ${addrs.join(', ') || 'none'}`);
  }
  for (const h of i.helpers) {
    lines.push(h.alive ? `  helper ${h.kind} (${h.from}): pid ${h.pid} as uid ${h.uid} in jail ${h.jailName}${h.process ? `, CapEff ${h.process.capEff}, own namespaces: ${h.process.ownNamespaces.join(' ') || 'none'}` : ''}`
      : `  helper ${h.kind} (${h.from}): pid ${h.pid} is GONE: what it served (${h.from}) no longer works; restart the VM`);
  }
  if (i.plan) lines.push(`  plan: ${i.plan.argv.length} QEMU arguments, ${i.plan.manifest.length} resources (--json shows them)`);
  return lines.join('\n');
}
