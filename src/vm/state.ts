/**
 * @module vm/state: moving a VM's state through manager-opened fds. Save: the vCPUs stop,
 * the state goes into a file the manager opened (QMP getfd, then migrate to `fd:`), and
 * QEMU quits. Restore: the start steps with QEMU launched waiting for a stream (-incoming
 * defer), the file's fd passed (getfd, migrate-incoming `fd:`), then cont. QEMU never
 * opens the file by name.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError } from './errors.js';
import type { QmpConn } from './ports.js';
import { START_STEPS, type StartCtx } from './start.js';
import type { Step } from './steps.js';

/** The names the passed fds have inside QEMU's monitor (consumed by migrate / migrate-incoming). */
const SAVE_FD = 'warden-save';
const RESTORE_FD = 'warden-restore';

/** QEMU's own figures for one migration (query-migrate), as it reports them. */
export interface MigrationFigures {
  status: string;
  /** Milliseconds from the migrate command to completion, by QEMU's clock. */
  totalTimeMs?: number;
  downtimeMs?: number;
  setupTimeMs?: number;
  transferredBytes?: number;
  ramTotalBytes?: number;
  error?: string;
}

const DONE = new Set(['completed', 'failed', 'cancelled']);

/** Polls query-migrate until the migration ends (or `timeoutMs`), returning QEMU's figures. */
export async function waitMigration(q: QmpConn, timeoutMs: number): Promise<MigrationFigures> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = (await q.execute('query-migrate')) as Record<string, unknown>;
    const status = typeof m['status'] === 'string' ? m['status'] : 'none';
    if (DONE.has(status) || Date.now() > deadline) return figures(m, status);
    await sleep(50);
  }
}

function figures(m: Record<string, unknown>, status: string): MigrationFigures {
  const ram = (m['ram'] ?? {}) as Record<string, unknown>;
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const out: MigrationFigures = { status };
  const set = <K extends keyof MigrationFigures>(k: K, v: MigrationFigures[K] | undefined): void => { if (v !== undefined) out[k] = v; };
  set('totalTimeMs', num(m['total-time']));
  set('downtimeMs', num(m['downtime']));
  set('setupTimeMs', num(m['setup-time']));
  set('transferredBytes', num(ram['transferred']));
  set('ramTotalBytes', num(ram['total']));
  set('error', typeof m['error-desc'] === 'string' ? m['error-desc'] : undefined);
  return out;
}

/**
 * Stops the vCPUs and migrates the state into `fd` (the manager's save file, positioned after
 * its header). On failure the VM is left as it was (running again if it ran) and this throws.
 */
export async function saveToFd(q: QmpConn, fd: number, vm: string, timeoutMs = 300_000): Promise<MigrationFigures> {
  const before = ((await q.execute('query-status')) as { status: string }).status;
  await q.execute('stop');
  try {
    await q.execute('getfd', { fdname: SAVE_FD }, undefined, [fd]);
    await q.execute('migrate', { uri: `fd:${SAVE_FD}` });
    const f = await waitMigration(q, timeoutMs);
    if (f.status !== 'completed') {
      if (f.status !== 'failed') await q.execute('migrate_cancel').catch(() => undefined);
      throw new VmError('VM_SAVE_FAILED', `saving the state of VM ${vm} did not complete: QEMU reports "${f.status}"${f.error ? ` (${f.error})` : ''}`, { context: { vm, migration: f } });
    }
    return f;
  } catch (err) {
    await q.execute('closefd', { fdname: SAVE_FD }).catch(() => undefined); // still there if migrate never took it
    if (before === 'running') await q.execute('cont').catch(() => undefined);
    throw err;
  }
}

/** The restore steps: start's, with QEMU planned to wait for a stream, the stream passed, then cont. */
export function restoreSteps(fd: number, figuresOut: { migration?: MigrationFigures }): ReadonlyArray<Step<StartCtx>> {
  const out: Array<Step<StartCtx>> = [];
  for (const s of START_STEPS) {
    if (s.name === 'facts') out.push(deferIncoming(s));
    else out.push(s);
    if (s.name === 'qmp') out.push(incoming(fd, figuresOut));
  }
  return out;
}

/** The facts step, then the fact that QEMU is to wait for an incoming stream (the planner adds -incoming defer). */
function deferIncoming(facts: Step<StartCtx>): Step<StartCtx> {
  return { name: 'facts', label: facts.label, async run(c) { await facts.run(c); c.facts = { ...c.facts!, incoming: 'defer' }; } };
}

function incoming(fd: number, figuresOut: { migration?: MigrationFigures }): Step<StartCtx> {
  return {
    name: 'incoming', label: 'loading the saved state (migrate-incoming on the file\'s fd)',
    async run(c) {
      const q = c.qmp!;
      await q.execute('getfd', { fdname: RESTORE_FD }, undefined, [fd]);
      await q.execute('migrate-incoming', { uri: `fd:${RESTORE_FD}` });
      // A stream QEMU cannot load makes it exit: the connection drops and the error names QEMU's last words (qemu.log).
      const f = await waitMigration(q, 300_000).catch((cause: unknown) => {
        throw new VmError('VM_RESTORE_FAILED', `QEMU of VM ${c.rec.name} stopped answering while loading the saved state`, {
          context: { vm: c.rec.name, log: c.paths.qemuLog }, cause, suggestions: [`read ${c.paths.qemuLog}`],
        });
      });
      figuresOut.migration = f;
      if (f.status !== 'completed') {
        throw new VmError('VM_RESTORE_FAILED', `loading the saved state of VM ${c.rec.name} did not complete: QEMU reports "${f.status}"${f.error ? ` (${f.error})` : ''}`, { context: { vm: c.rec.name, migration: f } });
      }
    },
  };
}
