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
