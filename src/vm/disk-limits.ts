/**
 * @module vm/disk-limits: changing a running disk's I/O limits. A disk started (or hot-plugged)
 * with limits has a throttle group of its own (plan/disks), changed by qom-set on it; a disk
 * without one is throttled on its device's BlockBackend (block_set_io_throttle). The stored
 * spec follows unless live-only, so the next start plans the group.
 */
import { throttleGroupId } from '../plan/index.js';
import { conflictingLimits, LIMIT_FIELDS, throttleLimits, type Disk, type DiskLimits, type LimitField } from '../spec/index.js';
import { VmError } from './errors.js';
import type { QmpConn } from './ports.js';
import type { HotplugEntry, VmRecord } from './record.js';
import type { TeardownDeps } from './teardown.js';

/** A change: a number sets a field, 0 removes it; `clear` removes every limit first. */
export interface LimitsChange { set: Partial<Record<LimitField, number>>; clear?: boolean; liveOnly?: boolean }

export interface LimitsResult {
  vm: string;
  disk: string;
  /** The limits in force now (absent fields: no limit). */
  limits: DiskLimits;
  /** How QEMU applies them: the disk's throttle group, or its device's BlockBackend. */
  via: 'throttle-group' | 'block-backend';
  liveOnly: boolean;
}

/** block_set_io_throttle's argument for each field. */
const LEGACY: Record<LimitField, string> = { iops: 'iops', iopsRead: 'iops_rd', iopsWrite: 'iops_wr', bps: 'bps', bpsRead: 'bps_rd', bpsWrite: 'bps_wr' };

function fromQemu(get: (f: LimitField) => unknown): DiskLimits {
  const out: Partial<Record<LimitField, number>> = {};
  for (const f of Object.keys(LIMIT_FIELDS) as LimitField[]) { const v = Number(get(f) ?? 0); if (v > 0) out[f] = v; }
  return out as DiskLimits;
}

/** The limits QEMU applies now, and through what: the disk's group if it has one, else its BlockBackend. */
async function liveLimits(q: QmpConn, disk: string): Promise<{ via: LimitsResult['via']; limits: DiskLimits; qdev?: string }> {
  const objects = (await q.execute('qom-list', { path: '/objects' })) as Array<{ name: string }>;
  if (objects.some((o) => o.name === throttleGroupId(disk))) {
    const l = (await q.execute('qom-get', { path: `/objects/${throttleGroupId(disk)}`, property: 'limits' })) as Record<string, unknown>;
    return { via: 'throttle-group', limits: fromQemu((f) => l[LIMIT_FIELDS[f]]) };
  }
  const blocks = (await q.execute('query-block')) as Array<{ qdev?: string; inserted?: Record<string, unknown> }>;
  const mine = blocks.find((b) => b.qdev !== undefined && (b.qdev === `disk-${disk}` || b.qdev.startsWith(`/machine/peripheral/disk-${disk}/`)));
  if (mine === undefined) throw new VmError('VM_DEVICE_NOT_FOUND', `QEMU has no block device backend for disk ${disk}`, { context: { disk } });
  // The QOM path, not the id: a virtio-blk-pci's backend is on its virtio-backend child.
  return { via: 'block-backend', limits: fromQemu((f) => mine.inserted?.[LEGACY[f]]), qdev: mine.qdev! };
}

function merged(cur: DiskLimits, c: LimitsChange): DiskLimits {
  const out: Partial<Record<LimitField, number | undefined>> = c.clear === true ? {} : { ...cur };
  for (const [k, v] of Object.entries(c.set) as Array<[LimitField, number | undefined]>) {
    if (v === undefined) continue;
    if (v === 0) delete out[k]; else out[k] = v;
  }
  return out as DiskLimits;
}

/** Where the disk is: the spec's disks, or a hot-plugged entry of this run kept out of the spec (live-only attach). */
function findDisk(rec: VmRecord, name: string): { inSpec: boolean; entry: HotplugEntry | undefined } {
  const inSpec = (rec.spec['disks'] as Disk[]).some((x) => x.name === name);
  const entry = (rec.hotplug ?? []).find((e) => e.name === name && e.run === rec.run?.startedAt && e.state === 'attached');
  if (!inSpec && entry === undefined) {
    throw new VmError('VM_DEVICE_NOT_FOUND', `VM ${rec.name} has no disk ${name}`, { context: { vm: rec.name, disk: name }, suggestions: ['warden inspect NAME shows the VM\'s disks'] });
  }
  return { inSpec, entry };
}

/** Sets a running disk's limits (merged into the ones in force), then the stored spec unless live-only. */
export async function setDiskLimits(d: TeardownDeps, rec: VmRecord, q: QmpConn, name: string, c: LimitsChange): Promise<{ record: VmRecord; result: LimitsResult }> {
  const where = findDisk(rec, name);
  const live = await liveLimits(q, name);
  if (c.clear !== true && Object.values(c.set).every((v) => v === undefined)) return { record: rec, result: { vm: rec.name, disk: name, limits: live.limits, via: live.via, liveOnly: true } }; // a question, not a change
  const next = merged(live.limits, c);
  const bad = conflictingLimits(next);
  if (bad.length > 0) {
    throw new VmError('VM_HOTPLUG_FAILED', `cannot set the I/O limits of disk ${name} of VM ${rec.name}: ${bad.join('; ')}`, {
      context: { vm: rec.name, disk: name, current: live.limits, asked: c.set }, suggestions: ['remove the other kind with 0 (e.g. --bps 0 before --bps-read)'],
    });
  }
  if (live.via === 'throttle-group') {
    await q.execute('qom-set', { path: `/objects/${throttleGroupId(name)}`, property: 'limits', value: throttleLimits(next) });
  } else {
    const args: Record<string, unknown> = { id: live.qdev };
    for (const f of Object.keys(LEGACY) as LimitField[]) args[LEGACY[f]] = next[f] ?? 0;
    await q.execute('block_set_io_throttle', args);
  }
  const liveOnly = c.liveOnly === true;
  const withLimits = (x: Record<string, unknown>): Record<string, unknown> => {
    const { limits: _old, ...rest } = x;
    return Object.keys(next).length === 0 ? rest : { ...rest, limits: next };
  };
  if (!liveOnly) {
    const disks = (rec.spec['disks'] as unknown as Array<Record<string, unknown>>).map((x) => (x['name'] === name ? withLimits(x) : x));
    const hotplug = (rec.hotplug ?? []).map((e) => (e === where.entry ? { ...e, disk: withLimits(e.disk) } : e));
    rec = { ...rec, spec: { ...rec.spec, disks }, hotplug, updatedAt: d.now() };
    await d.store.write(rec);
  }
  return { record: rec, result: { vm: rec.name, disk: name, limits: next, via: live.via, liveOnly } };
}
