/**
 * @module vm/migrate: live migration's QMP side. The source passes QEMU a socket the manager
 * connected (getfd, `migrate fd:`), follows query-migrate as progress, and on any failure or
 * cancel resumes its vCPUs; the target runs the start steps with QEMU waiting for a stream
 * (-incoming defer), passes the connection the manager accepted (getfd, `migrate-incoming
 * fd:`), then cont. QEMU connects nowhere and listens nowhere by itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError } from './errors.js';
import type { QmpConn } from './ports.js';
import { START_STEPS, type StartCtx } from './start.js';
import { waitMigration, type MigrationFigures } from './state.js';
import type { Step } from './steps.js';
import type { LinkEnd } from './migrate-link.js';
import { exportDisks, type NbdAddress } from './migrate-nbd.js';

/** The names the passed fds have inside QEMU's monitor. */
const OUT_FD = 'warden-migrate-out';
const IN_FD = 'warden-migrate-in';

/** One progress sample of a running migration, from query-migrate. */
export interface MigrationSample {
  status: string;
  transferredBytes: number;
  totalBytes: number;
  remainingBytes: number;
  /** Pages dirtied per second (QEMU's dirty-pages-rate). */
  dirtyPagesRate: number;
  expectedDowntimeMs?: number;
}

/** query-migrate's reply as a sample (fields QEMU leaves out are 0). */
export function sampleOf(m: Record<string, unknown>): MigrationSample {
  const ram = (m['ram'] ?? {}) as Record<string, unknown>;
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const s: MigrationSample = {
    status: typeof m['status'] === 'string' ? m['status'] : 'none',
    transferredBytes: n(ram['transferred']), totalBytes: n(ram['total']), remainingBytes: n(ram['remaining']), dirtyPagesRate: n(ram['dirty-pages-rate']),
  };
  if (typeof m['expected-downtime'] === 'number') s.expectedDowntimeMs = m['expected-downtime'];
  return s;
}

/** One line for a progress sample: what moved, what is left, how fast the guest dirties memory. */
export function describeSample(s: MigrationSample): string {
  const mib = (b: number): string => (b / 1048576).toFixed(1);
  const down = s.expectedDowntimeMs === undefined ? '' : `, expected downtime ${s.expectedDowntimeMs} ms`;
  return `migration ${s.status}: ${mib(s.transferredBytes)} MiB sent, ${mib(s.remainingBytes)} of ${mib(s.totalBytes)} MiB left, ${s.dirtyPagesRate} dirty pages/s${down}`;
}

export interface MigrateOutOptions {
  /** Called with every sample (about every `pollMs`). */
  onSample?: (s: MigrationSample) => void;
  /** Aborted: `migrate_cancel`, and this rejects with VM_MIGRATE_CANCELLED once QEMU has cancelled. */
  signal?: AbortSignal;
  /** Bytes per second QEMU may send (migrate-set-parameters max-bandwidth); absent: QEMU's default. */
  maxBandwidth?: number;
  /** Run at pre-switchover (vCPUs stopped, before the last RAM is sent): the disk mirrors end there. Sets QEMU's pause-before-switchover. */
  beforeSwitchover?: () => Promise<void>;
  pollMs?: number;
}

/**
 * Migrates the VM's state into `fd` (a socket the manager connected to the target) until
 * QEMU reports completed; the vCPUs are then stopped (postmigrate) and the caller decides
 * the end (teardown when the target runs, `resumeAfterFailure` when it does not). On failure
 * or cancel the vCPUs run again if they ran, and this throws.
 */
export async function migrateToFd(q: QmpConn, fd: number, vm: string, o: MigrateOutOptions = {}): Promise<MigrationFigures> {
  const before = ((await q.execute('query-status')) as { status: string }).status;
  const restore = await setFor(q, o);
  try {
    await q.execute('getfd', { fdname: OUT_FD }, undefined, [fd]);
    await q.execute('migrate', { uri: `fd:${OUT_FD}` });
    const f = await follow(q, o);
    if (f.status === 'cancelled' || o.signal?.aborted === true) {
      throw new VmError('VM_MIGRATE_CANCELLED', `the migration of VM ${vm} was cancelled; the VM runs on here`, { context: { vm, migration: f } });
    }
    if (f.status !== 'completed') {
      throw new VmError('VM_MIGRATE_FAILED', `migrating VM ${vm} did not complete: QEMU reports "${f.status}"${f.error ? ` (${f.error})` : ''}; the VM runs on here`, { context: { vm, migration: f } });
    }
    return f;
  } catch (err) {
    await q.execute('closefd', { fdname: OUT_FD }).catch(() => undefined); // still there if migrate never took it
    await settleCancelled(q);
    await resumeAfterFailure(q, before);
    throw err;
  } finally {
    await restore();
  }
}

/** Sets the migration's parameters and capabilities; returns what puts them back (a later save must not inherit them). */
async function setFor(q: QmpConn, o: MigrateOutOptions): Promise<() => Promise<void>> {
  const undo: Array<() => Promise<unknown>> = [];
  if (o.maxBandwidth !== undefined) {
    const was = ((await q.execute('query-migrate-parameters')) as Record<string, unknown>)['max-bandwidth'];
    await q.execute('migrate-set-parameters', { 'max-bandwidth': o.maxBandwidth });
    if (typeof was === 'number') undo.push(() => q.execute('migrate-set-parameters', { 'max-bandwidth': was }));
  }
  if (o.beforeSwitchover !== undefined) {
    await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: true }] });
    undo.push(() => q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: false }] }));
  }
  return async () => { for (const u of undo) await u().catch(() => undefined); };
}

/** Polls query-migrate until it ends, reporting samples and cancelling when asked. */
async function follow(q: QmpConn, o: MigrateOutOptions): Promise<MigrationFigures> {
  let cancelSent = false;
  for (;;) {
    if (o.signal?.aborted === true && !cancelSent) {
      cancelSent = true;
      await q.execute('migrate_cancel');
    }
    const m = (await q.execute('query-migrate')) as Record<string, unknown>;
    const s = sampleOf(m);
    if (s.status === 'pre-switchover' && o.beforeSwitchover !== undefined && !cancelSent) {
      await o.beforeSwitchover();
      await q.execute('migrate-continue', { state: 'pre-switchover' });
      continue;
    }
    if (s.status === 'completed' || s.status === 'failed' || s.status === 'cancelled') return waitMigration(q, 0);
    o.onSample?.(s);
    await sleep(o.pollMs ?? 100);
  }
}

/** A migration this side gave up on (a step at pre-switchover failed, say): cancelled, and waited for. */
async function settleCancelled(q: QmpConn): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const st = sampleOf((await q.execute('query-migrate').catch(() => ({}))) as Record<string, unknown>).status;
    if (st === 'none' || st === 'completed' || st === 'failed' || st === 'cancelled') return;
    if (i === 0) await q.execute('migrate_cancel').catch(() => undefined);
    await sleep(50);
  }
}

/**
 * The source after a migration that did not end with the target running: its vCPUs run again
 * if they ran before (a completed migration leaves them stopped in postmigrate; cont
 * re-activates its disks, which the target never activated: late-block-activate).
 */
export async function resumeAfterFailure(q: QmpConn, before: string): Promise<void> {
  if (before !== 'running') return;
  const now = ((await q.execute('query-status').catch(() => ({ status: 'unknown' }))) as { status: string }).status;
  if (now !== 'running') await q.execute('cont');
}

/**
 * The incoming start steps: start's, with QEMU planned to wait for a stream (-incoming defer),
 * then, once QMP answers, `ready` (the target may now be connected to), the connection
 * `accept` returns passed to QEMU, the stream loaded, then cont as any start.
 */
export interface IncomingLink {
  /** The connection the migration stream arrives on, once a source proved itself. */
  accept(): Promise<LinkEnd>;
  /** QEMU waits for the stream (and, with `exportHost`, the disks are exported at `nbd`). */
  ready(nbd?: NbdAddress): void;
  /** Disks the source copies (storage not shared): exported from QEMU's NBD server, relayed on this address. */
  exportHost?: string;
  disks?: readonly string[];
}

export function incomingSteps(link: IncomingLink, figuresOut: { migration?: MigrationFigures }): ReadonlyArray<Step<StartCtx>> {
  const out: Array<Step<StartCtx>> = [];
  for (const s of START_STEPS) {
    if (s.name === 'facts') out.push({ name: 'facts', label: s.label, async run(c) { await s.run(c); c.facts = { ...c.facts!, incoming: 'defer' }; } });
    else out.push(s);
    if (s.name === 'qmp') out.push(incomingStep(link, figuresOut));
  }
  return out;
}

function incomingStep(link: IncomingLink, figuresOut: { migration?: MigrationFigures }): Step<StartCtx> {
  let exported: { close(): Promise<void> } | undefined;
  return {
    name: 'incoming', label: 'receiving the migration stream (migrate-incoming on the accepted connection)',
    async run(c) {
      const q = c.qmp!;
      // Disks stay inactive until cont: a source that resumes after a failure can take its locks back.
      await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'late-block-activate', state: true }] });
      if (link.exportHost !== undefined && (link.disks ?? []).length > 0) {
        const ex = await exportDisks(q, c.paths.dir, link.exportHost, link.disks ?? []);
        exported = ex;
        link.ready(ex.address);
      } else {
        link.ready();
      }
      const end = await link.accept();
      try {
        await q.execute('getfd', { fdname: IN_FD }, undefined, [end.fd]);
      } finally {
        end.close(); // QEMU holds its own copy now (or none: the start fails and is undone)
      }
      await q.execute('migrate-incoming', { uri: `fd:${IN_FD}` });
      // A stream that breaks off makes QEMU exit: the connection drops and the start is undone.
      const f = await waitMigration(q, 3_600_000).catch((cause: unknown) => {
        throw new VmError('VM_MIGRATE_FAILED', `QEMU of incoming VM ${c.rec.name} stopped answering while receiving the migration`, {
          context: { vm: c.rec.name, log: c.paths.qemuLog }, cause, suggestions: [`read ${c.paths.qemuLog}`],
        });
      });
      figuresOut.migration = f;
      await exported?.close(); // the source ended its mirrors before switchover: the disks are whole
      exported = undefined;
      if (f.status !== 'completed') {
        throw new VmError('VM_MIGRATE_FAILED', `receiving VM ${c.rec.name} did not complete: QEMU reports "${f.status}"${f.error ? ` (${f.error})` : ''}`, { context: { vm: c.rec.name, migration: f } });
      }
    },
    undo: async () => { await exported?.close(); },
  };
}
