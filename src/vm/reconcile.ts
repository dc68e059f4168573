/**
 * @module vm/reconcile: bringing a VM's record in line with reality, under its lock: a
 * phase that expects QEMU whose QEMU is gone (or is another process now) is ended with its
 * reason; a "starting" or "stopping" left by a dead manager is finished; a deep reconcile
 * also asks QMP whether the vCPUs run. Also the short-lived QMP connection every verb uses.
 */
import { VmError } from './errors.js';
import { expectsProcess } from './machine.js';
import { isAlive } from './proc.js';
import { endRun, retryUndo, type TeardownDeps } from './teardown.js';
import type { QmpConn } from './ports.js';
import type { VmRecord } from './record.js';

/** Connects to the VM's monitor, runs `fn`, disconnects (QEMU serves one monitor client at a time). */
export async function withQmp<T>(d: TeardownDeps, rec: VmRecord, fn: (q: QmpConn) => Promise<T>): Promise<T> {
  const q = await d.backends.qmpConnect(d.store.paths(rec.name).qmpSocket, 5000).catch((cause: unknown) => {
    throw new VmError('VM_QMP', `connecting to the QMP monitor of VM ${rec.name} failed`, { context: { vm: rec.name }, cause });
  });
  try {
    return await fn(q);
  } finally {
    await q.close().catch(() => undefined);
  }
}

/**
 * Deps whose QMP connects to one socket share one connection, opened on first use and closed by
 * `close` (call it before anything else may connect: QEMU serves one client at a time): a QMP
 * verb's deep reconcile (query-status) and the verb itself pay one connect and negotiation, not
 * two. A use that saw a command fail drops it when closed, so the next connect is a fresh one.
 */
export function holdQmp(d: TeardownDeps): { d: TeardownDeps; close(): Promise<void> } {
  let held: { path: string; q: QmpConn } | undefined;
  const drop = async (): Promise<void> => { const h = held; held = undefined; await h?.q.close().catch(() => undefined); };
  const qmpConnect = async (path: string, timeoutMs: number): Promise<QmpConn> => {
    if (held !== undefined && held.path !== path) return d.backends.qmpConnect(path, timeoutMs);
    held ??= { path, q: await d.backends.qmpConnect(path, timeoutMs) };
    const h = held;
    let failed = false;
    return {
      ...h.q,
      execute: (command, args, t, fds) => h.q.execute(command, args, t, fds).catch((err: unknown) => { failed = true; throw err; }),
      close: async () => { if (failed && held === h) await drop(); },
    };
  };
  return { d: { ...d, backends: { ...d.backends, qmpConnect } }, close: drop };
}

/** The caller holds the VM's lock, so a "starting" or "stopping" phase belongs to a process that died. */
export async function reconcileLocked(d: TeardownDeps, rec: VmRecord, deep: boolean): Promise<VmRecord> {
  if (!expectsProcess(rec.phase)) {
    return (rec.undo ?? []).length > 0 ? retryUndo(d, rec) : rec;
  }
  if (rec.phase === 'starting') {
    return endRun(d, rec, { reason: 'interrupted', detail: 'the manager stopped while starting the VM; everything it set up was undone' });
  }
  const alive = rec.run !== undefined && (await isAlive(d.fs, rec.run.qemu));
  if (!alive || rec.phase === 'stopping') return endRun(d, rec);
  if (!deep) return rec;
  const status = await withQmp(d, rec, async (q) => ((await q.execute('query-status', undefined, 3000)) as { status: string }).status)
    .catch(() => undefined);
  const phase = status === 'running' ? 'running' : status === 'paused' ? 'paused' : rec.phase;
  if (phase === rec.phase) return rec;
  const out: VmRecord = { ...rec, phase, updatedAt: d.now() };
  await d.store.write(out);
  return out;
}
