/**
 * @module vm/helpers: starting the plan's helper programs (passt ...) in their own jails,
 * before QEMU: each helper's end of its socketpair is handed to its jail, QEMU's end joins
 * the fds QEMU gets. Every helper is recorded for undo before it exists, and in the VM's
 * record (uid, pid) once it runs, so inspect shows it and teardown stops it after QEMU.
 */
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';
import { chownStateDir, closeQuietly, openStateDir } from './helpers-state.js';
import { isAlive, procId } from './proc.js';
import type { HelperRun, UndoRecord } from './record.js';
import type { StartCtx } from './start.js';

type RecordUndo = (c: StartCtx, u: UndoRecord) => Promise<void>;
import type { Step } from './steps.js';

/** A helper's undo entry (one per helper; teardown stops it like QEMU's jail). */
export function helperUndo(jailName: string, owner: string, stateDirs: string[] = []): UndoRecord {
  return stateDirs.length === 0 ? { kind: 'helper', jailName, owner } : { kind: 'helper', jailName, owner, stateDirs };
}

/** One socketpair per `pair` name: [QEMU's end, the helper's end] (a listening socket with QEMU's end queued, where the helper accepts). */
function socketPairs(c: StartCtx): Map<string, [number, number]> {
  const native = loadNative();
  const pairs = new Map<string, [number, number]>();
  const listens = new Set(c.plan!.helpers.flatMap((h) => h.fds.flatMap((f) => (f.kind === 'socketpair' && f.helperListens === true ? [f.pair] : []))));
  for (const f of c.plan!.fds) if (f.kind === 'socketpair' && !pairs.has(f.pair)) pairs.set(f.pair, listens.has(f.pair) ? listenerPair() : native.socketpair());
  for (const [pair, [qemuEnd]] of pairs) c.fds.adopt(pair, qemuEnd); // closed with QEMU's other fds once QEMU holds its copy
  return pairs;
}

/** [connected end, listening end]: bound in a private directory only for the connect, then unlinked. */
function listenerPair(): [number, number] {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vu-'));
  try {
    const [listening, connected] = loadNative().listenConnected(join(dir, 's'));
    return [connected, listening];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function launchOne(c: StartCtx, record: RecordUndo, h: NonNullable<StartCtx['plan']>['helpers'][number], pairs: Map<string, [number, number]>, stderr: number): Promise<HelperRun> {
  const stateDirs = h.fds.flatMap((f) => (f.kind === 'state-dir' ? [f.path] : []));
  await record(c, helperUndo(h.jail.name, c.paths.dir, stateDirs));
  const dirFds = new Map(stateDirs.map((p) => [p, openStateDir(p, c.rec.name)] as const));
  try {
    return await launchWith(c, h, pairs, dirFds, stderr);
  } finally {
    for (const fd of dirFds.values()) closeQuietly(fd);
  }
}

async function launchWith(c: StartCtx, h: NonNullable<StartCtx['plan']>['helpers'][number], pairs: Map<string, [number, number]>, dirFds: Map<string, number>, stderr: number): Promise<HelperRun> {
  const fds = new Map(h.fds.map((f) => {
    const end = f.kind === 'socketpair' ? pairs.get(f.pair)?.[1] : f.kind === 'state-dir' ? dirFds.get(f.path) : undefined;
    if (end === undefined) throw new VmError('VM_START_FAILED', `helper ${h.jail.name} of VM ${c.rec.name} needs fd ${f.name}, which is neither a socketpair nor a state directory the plan names`, { context: { vm: c.rec.name, helper: h.jail.name } });
    return [f.name, end] as const;
  }));
  const statusFile = join(c.paths.dir, `${h.jail.name}.status`);
  rmSync(statusFile, { force: true });
  const l = await c.d.backends.jail.launch(h.jail, fds, stderr, statusFile, c.paths.dir);
  // Lent to the leased uid only now that it is known: swtpm touches its state at QEMU's first command, and QEMU starts later.
  for (const p of dirFds.keys()) chownStateDir(p, l.uid, l.gid);
  const proc = await procId(c.d.fs, l.pid);
  if (proc === null) throw await died(c, h.kind, h.from, h.jail.name);
  const run: HelperRun = { kind: h.kind, from: h.from, jailName: h.jail.name, proc, uid: l.uid, gid: l.gid, cgroups: l.cgroups, ...(l.statusFile === undefined ? {} : { statusFile: l.statusFile }) };
  await waitReady(c, run);
  return run;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A helper is ready once it has set itself up: passt binds its forwards, then moves into a
 * user namespace of its own (so its user namespace differs from its parent's, the jail's).
 * One that exits first (a forwarded port taken ...) fails the start with its own words.
 */
async function waitReady(c: StartCtx, h: HelperRun, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isAlive(c.d.fs, h.proc))) throw await died(c, h.kind, h.from, h.jailName);
    if (!(h.kind === 'passt' || h.kind === 'virtiofsd') || ownUserns(h.proc.pid)) return; // virtiofsd: once unshare made its namespace
    await sleep(20);
  }
}

/** VM_START_FAILED with the helper's last words (it writes them to qemu.log) and a hint for a taken port. */
async function died(c: StartCtx, kind: string, from: string, jailName: string): Promise<VmError> {
  await sleep(200); // its last words travel through the log writer's pipe
  const last = lastLine(c.paths.qemuLog);
  const port = /Failed to bind any port for '-(t|u) ([^']*)'/.exec(last);
  return new VmError('VM_START_FAILED', `helper ${kind} of VM ${c.rec.name} (${from}) exited while starting${last ? `: ${last}` : ''}`, {
    context: { vm: c.rec.name, helper: jailName, log: c.paths.qemuLog },
    suggestions: [...(port ? [`the forward ${port[2]} (${port[1] === 't' ? 'tcp' : 'udp'}) is probably taken, by another VM or program: ss -lnp`] : []), `read ${c.paths.qemuLog}`],
  });
}

function ownUserns(pid: number): boolean {
  try {
    const ppid = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1];
    return readlinkSync(`/proc/${pid}/ns/user`) !== readlinkSync(`/proc/${ppid}/ns/user`);
  } catch {
    return false;
  }
}

function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n').filter((l) => !/Failed to send \d+ bytes to syslog/.test(l));
    return (lines[lines.length - 1] ?? '').replace(/^\S+Z /, '');
  } catch {
    return '';
  }
}

/** The step; `record` is start's write-ahead undo recorder. */
export const helpersStep = (record: RecordUndo): Step<StartCtx> => ({
  name: 'helpers', label: 'starting helpers in their own jails',
  async run(c) {
    const plan = c.plan!;
    if (plan.helpers.length === 0) return;
    const pairs = socketPairs(c);
    const stderr = c.fds.logs.writeEnd('qemu-stderr');
    const runs: HelperRun[] = [];
    try {
      for (const h of plan.helpers) {
        runs.push(await launchOne(c, record, h, pairs, stderr));
        c.rec = { ...c.rec, helpers: runs, updatedAt: c.d.now() };
        await c.d.store.write(c.rec);
      }
    } finally {
      // Each helper holds its own copy now (or failed to start): ours must go, or a helper would never see QEMU's end close.
      const native = loadNative();
      for (const [, [, helperEnd]] of pairs) native.closeFd(helperEnd);
    }
  },
});
