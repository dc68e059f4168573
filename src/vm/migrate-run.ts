/**
 * @module vm/migrate-run: a live migration between two managers, as steps. Source: the target
 * prepares (defines, jails and launches the VM waiting for a stream) and returns an address;
 * this manager connects to it, QEMU migrates into that socket, the target loads the stream and
 * runs the VM, then this side quits its QEMU and removes the VM. Until the target says it runs
 * the VM, a failure or a cancel leaves the VM running here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError } from './errors.js';
import { connectForMigration, type MigrationAddress } from './migrate-link.js';
import { describeSample, migrateToFd, resumeAfterFailure } from './migrate.js';
import type { MigrationFigures } from './state.js';
import { reconcileLocked, withQmp } from './reconcile.js';
import type { VmRecord } from './record.js';
import type { Progress } from './steps.js';
import { stopRun } from './stop.js';
import type { TeardownDeps } from './teardown.js';
import type { QmpConn } from './ports.js';
import { layerNode } from '../plan/index.js';
import { planDiskCopies, type DiskCopy, type PathRule } from './migrate-disks.js';
import { dropMirrors, mirrorDisks, type Mirror, type NbdAddress } from './migrate-nbd.js';

/** The other daemon, as the source sees it (src/api makes one over the target's API). */
export interface MigrationTarget {
  /** Where it is (its API socket), for messages and for a daemon to reach it on the caller's behalf. */
  readonly to: string;
  /** The address the target is to listen on for the stream, when the caller chose one (default: the target's loopback). */
  readonly address?: string;
  /** The caller accepts a stream that is not encrypted on a non-loopback address (a trusted link). */
  readonly insecureNetwork?: boolean;
  /** The target defines the VM from `spec`, launches it waiting, and says where to send the stream. */
  prepare(req: { name: string; spec: Record<string, unknown>; copies?: DiskCopy[] }): Promise<PreparedTarget>;
}

export interface PreparedTarget {
  address: MigrationAddress;
  /** Where the target exports the disks it made for `copies`. */
  nbd?: NbdAddress;
  /** Resolves (with the target's figures) once the target runs the VM; rejects when it did not take it over (it has undone its start). */
  finish(): Promise<unknown>;
}

export interface MigrateOptions {
  signal?: AbortSignal;
  /** Bytes per second for the stream (QEMU's max-bandwidth). */
  maxBandwidth?: number;
  /** Storage not shared: the target makes the disks (at paths mapped by `pathMap`) and the source mirrors them before the RAM. */
  copyStorage?: boolean;
  pathMap?: PathRule[];
}

export interface MigrateResult {
  vm: string;
  to: string;
  /** QEMU's figures on this side (total time, downtime, bytes). */
  migration: MigrationFigures;
  /** What the target reported once it ran the VM. */
  target: unknown;
}

/**
 * The target plans the VM from its spec: devices hot-plugged into (or detached from) this run
 * would sit elsewhere on the target's buses, and QEMU would refuse the stream halfway.
 */
export function refuseChangedDevices(rec: VmRecord): void {
  const changed = (rec.hotplug ?? []).filter((h) => h.run === rec.run?.startedAt);
  if (changed.length === 0) return;
  throw new VmError('VM_MIGRATE_FAILED', `cannot migrate VM ${rec.name}: devices were hot-plugged or detached while it runs (${changed.map((h) => h.name).join(', ')})`, {
    context: { vm: rec.name, devices: changed.map((h) => h.name) },
    suggestions: [`restart it first (warden restart ${rec.name}), so its devices are the spec's, then migrate`],
  });
}

/** Each disk's virtual size (its top layer's), as the source's QEMU has it. */
async function diskSizes(q: QmpConn): Promise<Record<string, number>> {
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; image?: { 'virtual-size'?: number } }>;
  const out: Record<string, number> = {};
  for (const n of nodes) {
    const m = /^(.*)-0-fmt$/.exec(n['node-name']);
    if (m !== null && typeof n.image?.['virtual-size'] === 'number' && layerNode(m[1]!, 0) === n['node-name']) out[m[1]!] = n.image['virtual-size'];
  }
  return out;
}

/** Runs under the VM's lock (VmManager.migrateOut), on the reconciled record of a running or paused VM. */
export async function runMigrateOut(d: TeardownDeps, progress: Progress, rec: VmRecord, target: MigrationTarget, o: MigrateOptions): Promise<MigrateResult> {
  const name = rec.name;
  refuseChangedDevices(rec);
  progress.begin(`migrating VM ${name} to ${target.to}`);
  const copy = o.copyStorage === true || (o.pathMap ?? []).length > 0;
  const moving = copy ? planDiskCopies(rec.spec, o.pathMap ?? [], await withQmp(d, rec, diskSizes)) : { spec: rec.spec, copies: undefined };
  progress.step('the target prepares the VM (plan, jail, QEMU waiting for the stream)');
  const prep = await target.prepare({ name, spec: moving.spec, ...(moving.copies === undefined ? {} : { copies: moving.copies }) });
  // The target undoes its start once the stream breaks (at once), or when no stream came (its accept times out): wait for the first.
  const settle = (): Promise<unknown> => Promise.race([prep.finish().catch(() => undefined), sleep(30_000)]);
  let migration: MigrationFigures;
  try {
    migration = await withQmp(d, rec, async (q) => {
      let mirrors: Mirror[] = [];
      if (moving.copies !== undefined && moving.copies.length > 0) {
        if (prep.nbd === undefined) throw new VmError('VM_MIGRATE_FAILED', `the target ${target.to} exports no disks to copy into`, { context: { vm: name, to: target.to } });
        progress.step(`copying ${moving.copies.map((c) => `${c.name} to ${c.path}`).join(', ')} (blockdev-mirror into the target's NBD exports)`);
        let said = 0;
        mirrors = await mirrorDisks(q, prep.nbd, moving.copies.map((c) => c.name), (done, total) => {
          if (o.signal?.aborted === true) throw new VmError('VM_MIGRATE_CANCELLED', `the migration of VM ${name} was cancelled while its disks were copied; the VM runs on here`, { context: { vm: name } });
          if (Date.now() - said >= 1000) { said = Date.now(); progress.info(`disks: ${(done / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB copied`); }
        });
      }
      progress.step(`sending the VM's state to ${prep.address.host}:${prep.address.port}`);
      let last = 0;
      try {
        const link = await connectForMigration(prep.address);
        try {
          return await migrateToFd(q, link.fd, name, {
            ...(o.signal === undefined ? {} : { signal: o.signal }), ...(o.maxBandwidth === undefined ? {} : { maxBandwidth: o.maxBandwidth }),
            onSample: (s) => { if (Date.now() - last >= 1000) { last = Date.now(); progress.info(describeSample(s)); } },
            ...(mirrors.length === 0 ? {} : { beforeSwitchover: () => dropMirrors(q, mirrors) }),
          });
        } finally {
          link.close(); // QEMU holds its own copy
        }
      } finally {
        await dropMirrors(q, mirrors, { force: true }); // gone already after a switchover; on failure, ended here
      }
    });
  } catch (err) {
    await settle();
    throw err;
  }
  let taken: unknown;
  try {
    progress.step('the target loads the rest and runs the VM');
    taken = await prep.finish();
  } catch (cause) {
    await withQmp(d, rec, (q) => resumeAfterFailure(q, rec.phase === 'running' ? 'running' : 'paused')).catch(() => undefined);
    throw new VmError('VM_MIGRATE_FAILED', `VM ${name} was sent to ${target.to}, but the target did not take it over; it runs on here`, { context: { vm: name, to: target.to, migration }, cause });
  }
  // The target runs the VM: this side's QEMU (stopped since switchover) goes, and with it the VM.
  const stopping: VmRecord = { ...(await reconcileLocked(d, rec, false)), phase: 'stopping', intent: 'stop', updatedAt: d.now() };
  await d.store.write(stopping);
  await stopRun(d, stopping, { force: true }, progress);
  await d.store.remove(name);
  progress.end(`VM ${name} runs on ${target.to} now (QEMU: ${migration.totalTimeMs ?? '?'} ms in all, ${migration.downtimeMs ?? '?'} ms downtime)`);
  return { vm: name, to: target.to, migration, target: taken };
}
