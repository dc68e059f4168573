/**
 * @module vm/hotplug: attaching and detaching disks of a running VM by fd. The chain is walked
 * under the image policy, claims are checked against every live VM, the pure planner
 * (plan/hotplug) gives the steps, and every step is recorded in the VM's record before the
 * first is made, so a manager killed midway is undone by the next hot-plug command (`recover`).
 */
import { callerOwner, loadHostPolicy, ownerFromUid, walkChainConfined, chainFiles } from '../image/index.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bootDiskSteps, planDiskAttach, planDiskDetach, SCSI_CONTROLLER, type HotplugStep } from '../plan/index.js';
import { DiskSchema, type Disk } from '../spec/index.js';
import { WardenError } from '../errors/index.js';
import { claimsFor, findConflict } from './claims.js';
import { VmError } from './errors.js';
import { OpenFds } from './fds.js';
import { expectsProcess } from './machine.js';
import type { QmpConn, SpecView } from './ports.js';
import type { DiskClaim, HotplugEntry, VmRecord } from './record.js';
import type { TeardownDeps } from './teardown.js';

export interface DiskAttachRequest {
  name: string;
  image: string;
  format: string;
  readOnly?: boolean;
  bus?: 'virtio' | 'scsi';
  liveOnly?: boolean;
  /** I/O limits (spec disks[].limits): the disk gets a throttle group of its own. */
  limits?: Record<string, number>;
}

export interface HotplugResult {
  vm: string;
  disk: string;
  deviceId: string;
  state: 'attached' | 'removing' | 'detached';
  /** Steps made, in order (QMP command names). */
  steps: string[];
  liveOnly: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The record's entries of the current run (older runs' devices went with their QEMU). */
export function entriesOf(rec: VmRecord): HotplugEntry[] {
  const run = rec.run?.startedAt;
  return (rec.hotplug ?? []).filter((e) => e.run === run);
}

export async function save(d: TeardownDeps, rec: VmRecord, entries: HotplugEntry[], extra: Partial<VmRecord> = {}): Promise<VmRecord> {
  const out: VmRecord = { ...rec, ...extra, hotplug: entries, updatedAt: d.now() };
  await d.store.write(out);
  return out;
}

function withoutClaims(all: readonly DiskClaim[] | undefined, gone: readonly DiskClaim[]): DiskClaim[] {
  const left = [...(all ?? [])];
  for (const g of gone) {
    const i = left.findIndex((c) => c.dev === g.dev && c.ino === g.ino && c.writable === g.writable);
    if (i >= 0) left.splice(i, 1);
  }
  return left;
}

/**
 * Undoes every attach a killed process left half done: the inverses of the begun steps,
 * last first, errors ignored (a step begun may not have been made), then its claims.
 */
export async function recover(d: TeardownDeps, rec: VmRecord, q: QmpConn): Promise<VmRecord> {
  let entries = entriesOf(rec);
  for (const e of entries.filter((x) => x.state === 'attaching' && x.kind !== 'nic')) {
    for (const u of planDiskDetach(e.steps.slice(0, e.begun))) await q.execute(u.command, u.args, 5000).catch(() => undefined);
    entries = entries.filter((x) => x !== e);
    rec = await save(d, rec, entries, { disks: withoutClaims(rec.disks, e.claims) });
  }
  if (entries.length !== (rec.hotplug ?? []).length) rec = await save(d, rec, entries);
  return finishRemovals(d, rec, q);
}

/**
 * Under the store-wide lock: the new layers must not conflict with another live VM's, or with
 * this VM's own. The claims and `entries` (the attach's journal entry) go in one write.
 */
async function claim(d: TeardownDeps, rec: VmRecord, mine: DiskClaim[], entries: HotplugEntry[]): Promise<VmRecord> {
  const lock = await d.store.lockRoot(`claim hot-plugged disk for ${rec.name}`);
  try {
    const others = [{ name: rec.name, disks: rec.disks ?? [] }];
    for (const name of await d.store.list()) {
      if (name === rec.name) continue;
      const o = await d.store.tryRead(name).catch(() => null);
      if (o?.disks !== undefined && expectsProcess(o.phase)) others.push({ name, disks: o.disks });
    }
    const hit = findConflict(mine, others);
    if (hit !== null) {
      throw new VmError('VM_DISK_IN_USE', `cannot attach ${hit.mine.path} to VM ${rec.name}: it is ${hit.theirs.writable ? 'written' : 'used'} by VM ${hit.other}`, {
        context: { vm: rec.name, path: hit.mine.path, other: hit.other, otherPath: hit.theirs.path, writable: hit.mine.writable },
        suggestions: [`detach it from ${hit.other} first, attach it --readonly, or give it its own overlay (qemu-img create -f qcow2 -b ${hit.mine.path} -F FORMAT NEW.qcow2)`],
      });
    }
    return await save(d, rec, entries, { disks: [...(rec.disks ?? []), ...mine] });
  } finally {
    await lock.release();
  }
}

/** What QEMU holds now: fdset ids and root-bus PCI slots (facts for the pure planner); both queries pipelined. */
export async function liveAllocations(q: QmpConn): Promise<{ fdsets: number[]; pciSlots: number[]; freePorts: string[] }> {
  type Dev = { slot: number; qdev_id?: string; pci_bridge?: { devices?: unknown[] } };
  const [sets, pci] = await Promise.all([q.execute('query-fdsets'), q.execute('query-pci')]);
  const fdsets = (sets as Array<{ 'fdset-id': number }>).map((f) => f['fdset-id']);
  const root = (pci as Array<{ bus: number; devices: Dev[] }>).filter((b) => b.bus === 0).flatMap((b) => b.devices);
  const freePorts = root.filter((x) => /^hp[0-9]+$/.test(x.qdev_id ?? '') && (x.pci_bridge?.devices ?? []).length === 0).map((x) => x.qdev_id!)
    .sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
  return { fdsets, pciSlots: root.map((x) => x.slot), freePorts };
}

/** The LUNs in use on the virtio-scsi controller (its scsi-hd/scsi-cd devices), or nothing when the VM has none. */
async function scsiLuns(q: QmpConn): Promise<{ scsiLuns?: number[] }> {
  const kids = (await q.execute('qom-list', { path: '/machine/peripheral' })) as Array<{ name: string; type: string }>;
  if (!kids.some((k) => k.name === SCSI_CONTROLLER)) return {};
  const disks = kids.filter((k) => /^child<scsi-(hd|cd)>$/.test(k.type));
  return { scsiLuns: await Promise.all(disks.map(async (k) => Number(await q.execute('qom-get', { path: `/machine/peripheral/${k.name}`, property: 'lun' })))) };
}

export async function attachDisk(d: TeardownDeps, rec: VmRecord, q: QmpConn, req: DiskAttachRequest): Promise<{ record: VmRecord; result: HotplugResult }> {
  rec = await recover(d, rec, q);
  const parsed = DiskSchema.safeParse({ name: req.name, image: req.image, format: req.format, readOnly: req.readOnly ?? false, ...(req.bus === undefined ? {} : { bus: req.bus }), ...(req.limits === undefined ? {} : { limits: req.limits }) });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'disk'}: ${i.message}`);
    throw new WardenError('SPEC_INVALID', `cannot attach disk ${req.name} to VM ${rec.name}: ${issues.join('; ')}`, { context: { vm: rec.name, disk: req.name, issues } });
  }
  const disk: Disk = parsed.data;
  const spec = rec.spec as unknown as SpecView & { machine?: 'pc' | 'q35'; disks: Disk[] };
  // The VM owner's access (read for every layer, read-write for a writable top) is checked on
  // this walk, whose checked inodes are the ones opened below: an API's earlier check is only
  // an early error, a file swapped since cannot pass here.
  const owner = rec.owner === undefined ? callerOwner() : ownerFromUid(rec.owner);
  const chain = await walkChainConfined({ ...disk, from: '--image' }, loadHostPolicy(), { owner });
  const [alloc, luns] = await Promise.all([liveAllocations(q), disk.bus === 'scsi' ? scsiLuns(q) : {}]);
  const live = { ...alloc, ...luns };
  const plan = planDiskAttach(disk, chain, { machine: spec.machine ?? 'q35', ...live, diskNames: [...spec.disks.map((x) => x.name), ...entriesOf(rec).map((e) => e.name)] });
  if (plan.issues.length > 0) {
    throw new VmError('VM_HOTPLUG_FAILED', `cannot attach disk ${disk.name} to VM ${rec.name}: ${plan.issues.map((i) => i.message).join('; ')}`, {
      context: { vm: rec.name, disk: disk.name, issues: plan.issues }, suggestions: plan.issues.flatMap((i) => (i.suggestion === undefined ? [] : [i.suggestion])),
    });
  }
  const mine = claimsFor({ disks: [disk] } as unknown as SpecView, { [disk.name]: chain });
  // Every step is recorded (as possibly made) before the first is made, in the write of the
  // claims: one write, not one per step (not fsync'd: the journal is run state, vm/store
  // VOLATILE). Safe to undo wholesale: every fdset id, node name and device id in the plan is
  // fresh (chosen under the VM lock), so an inverse of a step never made only fails "not found".
  const entry: HotplugEntry = { name: disk.name, run: rec.run?.startedAt ?? '', deviceId: plan.deviceId, state: 'attaching', steps: plan.steps, begun: plan.steps.length, claims: mine, disk: disk as unknown as Record<string, unknown>, liveOnly: req.liveOnly === true };
  let entries = [...entriesOf(rec), entry];
  rec = await claim(d, rec, mine, entries);
  const fds = new OpenFds();
  let made = 0;
  try {
    await fds.openAll(plan.fds.map((f) => ({ kind: 'file' as const, name: f.name, path: f.path, flags: f.flags, target: 0, from: '--image' })), rec.name, chainFiles([chain]));
    for (const s of plan.steps) {
      await q.execute(s.command, s.args, 10_000, s.fd === undefined ? undefined : [fds.byName.get(s.fd)!]);
      made++;
    }
  } catch (cause) {
    rec = await recover(d, rec, q);
    throw new VmError('VM_HOTPLUG_FAILED', `attaching disk ${disk.name} to VM ${rec.name} failed at step ${made + 1} (${plan.steps[made]?.command ?? 'opening the image'}); the steps made were undone`, { context: { vm: rec.name, disk: disk.name, image: disk.image }, cause });
  } finally {
    await fds.close(false); // QEMU holds its own copies now
  }
  entries = entries.map((e) => (e === entry ? { ...e, state: 'attached' as const, attachedAt: d.now() } : e));
  const specOut = req.liveOnly === true ? rec.spec : { ...rec.spec, disks: [...spec.disks, disk] };
  rec = await save(d, rec, entries, { spec: specOut });
  return { record: rec, result: { vm: rec.name, disk: disk.name, deviceId: plan.deviceId, state: 'attached', steps: plan.steps.map((s) => s.command), liveOnly: req.liveOnly === true } };
}

/** True once QEMU no longer has the device (the guest released it: DEVICE_DELETED was sent). */
async function deviceGone(q: QmpConn, id: string): Promise<boolean> {
  const kids = (await q.execute('qom-list', { path: '/machine/peripheral' })) as Array<{ name: string }>;
  return !kids.some((k) => k.name === id);
}

/** Waits for one device to leave QEMU; made before device_del, since QEMU may send the event before its reply. */
export interface RemovalWatch {
  /** True once the device is gone (DEVICE_DELETED, or already gone); false after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean>;
  close(): void;
}

/**
 * Watches for QEMU's DEVICE_DELETED of device `id` (qdev id: a disk's `disk-NAME`, a NIC's
 * device id). Shared by disk and NIC detach. On a port without events it polls
 * /machine/peripheral instead; either way a device already gone counts as removed.
 */
export function watchDeviceRemoval(q: QmpConn, id: string): RemovalWatch {
  const sub = q.events?.(['DEVICE_DELETED']);
  return {
    async wait(timeoutMs) {
      if (await deviceGone(q, id)) return true;
      if (sub === undefined) {
        for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) { await sleep(100); if (await deviceGone(q, id)) return true; }
        return false;
      }
      try {
        await sub.next({ timeoutMs, match: (e) => e.data['device'] === id });
        return true;
      } catch (err) {
        if ((err as { code?: string }).code !== 'QMP_TIMEOUT') throw err;
        return deviceGone(q, id); // an event lost to a reconnect still shows in qom
      }
    },
    close: () => sub?.close(),
  };
}

/**
 * Waits up to `waitMs` until QEMU no longer has device `id` (DEVICE_DELETED, or already gone);
 * false on timeout. Race-free after device_del too: it subscribes, then looks in qom. Shared by
 * disk and NIC detach (vm/hotplug-nic).
 */
export async function waitDeviceGone(q: QmpConn, id: string, waitMs: number): Promise<boolean> {
  const w = watchDeviceRemoval(q, id);
  try {
    return await w.wait(waitMs);
  } finally {
    w.close();
  }
}

/**
 * One release step after the device is gone. The device leaves /machine/peripheral before
 * QEMU drops its reference to the block node (finalized later), so blockdev-del may see the
 * node "in use" for a moment: retried for up to 5 s.
 */
export async function releaseStep(q: QmpConn, u: { command: string; args: Record<string, unknown> }): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await q.execute(u.command, u.args);
      return;
    } catch (err) {
      if (i >= 250 || !/in use/.test(String((err as Error).message))) throw err;
      await sleep(20);
    }
  }
}

/** After the guest let go: block nodes top down, fdsets; then the record, claims and (unless live-only) the spec. */
async function finishRemoval(d: TeardownDeps, rec: VmRecord, q: QmpConn, entry: HotplugEntry, liveOnly: boolean): Promise<VmRecord> {
  const [, ...rest] = planDiskDetach(entry.steps);
  for (const u of rest) {
    await releaseStep(q, u).catch((cause: unknown) => {
      throw new VmError('VM_HOTPLUG_FAILED', `detaching disk ${entry.name} from VM ${rec.name}: ${u.command} failed`, { context: { vm: rec.name, disk: entry.name, step: u }, cause });
    });
  }
  const spec = liveOnly ? rec.spec : { ...rec.spec, disks: (rec.spec['disks'] as Disk[]).filter((x) => x.name !== entry.name) };
  return save(d, rec, entriesOf(rec).filter((e) => e.name !== entry.name || e.kind === 'nic'), { disks: withoutClaims(rec.disks, entry.claims), spec });
}

/** Finishes every `removing` entry whose device the guest has released since (called by each hot-plug command). */
export async function finishRemovals(d: TeardownDeps, rec: VmRecord, q: QmpConn): Promise<VmRecord> {
  for (const e of entriesOf(rec).filter((x) => x.state === 'removing' && x.kind !== 'nic')) {
    if (await deviceGone(q, e.deviceId)) rec = await finishRemoval(d, rec, q, e, e.removing?.liveOnly ?? false);
  }
  return rec;
}

/**
 * Detaches a hot-plugged disk: device_del, then waits (up to `waitMs`) for QEMU's
 * DEVICE_DELETED; on timeout the entry stays `removing` (recorded) and a later hot-plug
 * command finishes it once the guest lets go. Then the block nodes top down and the fdsets,
 * so QEMU holds no fd of the disk's files.
 */
export async function detachDisk(d: TeardownDeps, rec: VmRecord, q: QmpConn, name: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<{ record: VmRecord; result: HotplugResult }> {
  const pending = entriesOf(rec).find((e) => e.name === name && e.kind !== 'nic' && e.state === 'removing');
  rec = await recover(d, rec, q);
  const entries = entriesOf(rec);
  const entry = entries.find((e) => e.name === name && e.kind !== 'nic');
  if (entry === undefined && pending !== undefined) {
    // The guest let go since the last detach; recover() just finished the removal.
    const steps = planDiskDetach(pending.steps).slice(1).map((u) => u.command);
    return { record: rec, result: { vm: rec.name, disk: name, deviceId: pending.deviceId, state: 'detached', steps, liveOnly: pending.removing?.liveOnly ?? false } };
  }
  const adopted = entry === undefined ? await bootDiskEntry(d, rec, q, name) : null;
  if (entry === undefined && adopted === null) {
    throw new VmError('VM_DEVICE_NOT_FOUND', `VM ${rec.name} has no disk ${name} (neither started with it nor hot-plugged, or already detached)`, {
      context: { vm: rec.name, disk: name, hotplugged: entries.map((e) => e.name) }, suggestions: ['warden inspect NAME shows the VM\'s disks'],
    });
  }
  return detachEntry(d, rec, q, entry ?? adopted!, entries, o);
}

/**
 * A disk QEMU was started with, as a hot-plug entry: its steps read back from the run's
 * plan (plan/hotplug bootDiskSteps), its claims those of its layers. Null when the plan has
 * no such disk or QEMU no longer has its device (detached earlier in this run).
 */
async function bootDiskEntry(d: TeardownDeps, rec: VmRecord, q: QmpConn, name: string): Promise<HotplugEntry | null> {
  const plan = JSON.parse(await readFile(join(d.store.paths(rec.name).dir, 'plan.json'), 'utf8').catch(() => '{}')) as { argv?: string[]; fds?: Array<{ name: string; path?: string; flags?: string[] }> };
  const steps = bootDiskSteps(plan.argv ?? [], name);
  if (steps.length === 0 || (await deviceGone(q, `disk-${name}`))) return null;
  const left = [...(rec.disks ?? [])];
  const claims: DiskClaim[] = [];
  for (const f of (plan.fds ?? []).filter((x) => new RegExp(`^disk-${name}-[0-9]+(-data)?$`).test(x.name) && x.path !== undefined)) {
    const i = left.findIndex((c) => c.path === f.path && c.writable === (f.flags ?? []).includes('O_RDWR'));
    if (i >= 0) claims.push(...left.splice(i, 1));
  }
  const disk = (rec.spec['disks'] as Disk[]).find((x) => x.name === name) ?? { name };
  return { name, run: rec.run?.startedAt ?? '', deviceId: `disk-${name}`, state: 'attached', steps, begun: steps.length, claims, disk: disk as unknown as Record<string, unknown>, liveOnly: false, boot: true };
}

/** device_del (recorded first), the wait, and the release; `removing` on timeout. */
async function detachEntry(d: TeardownDeps, rec: VmRecord, q: QmpConn, entry: HotplugEntry, entries: HotplugEntry[], o: { liveOnly?: boolean; waitMs?: number }): Promise<{ record: VmRecord; result: HotplugResult }> {
  const name = entry.name;
  const liveOnly = entry.removing?.liveOnly ?? o.liveOnly === true;
  const base = { vm: rec.name, disk: name, deviceId: entry.deviceId, liveOnly };
  const watch = watchDeviceRemoval(q, entry.deviceId);
  try {
    if (entry.state === 'attached') {
      // Recorded before device_del: from here on the guest may let go at any time.
      const removing = { ...entry, state: 'removing' as const, removing: { since: d.now(), liveOnly } };
      const before = rec;
      rec = await save(d, rec, entries.includes(entry) ? entries.map((e) => (e === entry ? removing : e)) : [...entries, removing]);
      await q.execute('device_del', { id: entry.deviceId }).catch(async (cause: unknown) => {
        await save(d, before, entries); // QEMU refused: nothing changed (e.g. a q35 boot disk on pcie.0, which takes no hot-unplug)
        throw new VmError('VM_HOTPLUG_FAILED', `cannot detach disk ${name} from VM ${rec.name}: QEMU refused device_del of ${entry.deviceId}`, {
          context: { vm: rec.name, disk: name, deviceId: entry.deviceId }, cause,
          suggestions: entry.boot === true ? ['a disk on q35\'s pcie.0 or on sata cannot be hot-unplugged: stop the VM and remove it from the spec'] : [],
        });
      });
    } else {
      // Asked again: the first request may never have been sent (a manager killed after recording it),
      // or the guest missed it. QEMU refuses a repeat it still has pending; that is fine.
      await q.execute('device_del', { id: entry.deviceId }).catch(() => undefined);
    }
    if (!(await watch.wait(o.waitMs ?? 10_000))) return { record: rec, result: { ...base, state: 'removing', steps: ['device_del'] } };
  } finally {
    watch.close();
  }
  rec = await finishRemoval(d, rec, q, entriesOf(rec).find((e) => e.name === name && e.kind !== 'nic')!, liveOnly);
  return { record: rec, result: { ...base, state: 'detached', steps: planDiskDetach(entry.steps).map((u) => u.command) } };
}

export type { HotplugStep };

export interface ResizeResult { vm: string; disk: string; node: string; fromBytes: number; toBytes: number }

/**
 * Grows a disk's top layer (block_resize on its format node, named as boot and hot-plug name
 * it: plan/disks planChain). Refuses to shrink (the guest's filesystem would be cut) and
 * read-only disks.
 */
export async function resizeDisk(rec: VmRecord, q: QmpConn, name: string, bytes: number): Promise<ResizeResult> {
  const disks = [...(rec.spec['disks'] as Disk[]), ...entriesOf(rec).filter((e) => e.kind !== 'nic').map((e) => e.disk as unknown as Disk)];
  const disk = disks.find((x) => x.name === name);
  if (disk === undefined) throw new VmError('VM_DEVICE_NOT_FOUND', `VM ${rec.name} has no disk ${name}`, { context: { vm: rec.name, disk: name, disks: disks.map((x) => x.name) } });
  if (disk.readOnly || disk.media === 'cdrom') throw new VmError('VM_HOTPLUG_FAILED', `disk ${name} of VM ${rec.name} is read-only; it cannot be resized`, { context: { vm: rec.name, disk: name } });
  const node = `${name}-0-fmt`;
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; image: { 'virtual-size': number } }>;
  const cur = nodes.find((x) => x['node-name'] === node)?.image['virtual-size'];
  if (cur === undefined) throw new VmError('VM_DEVICE_NOT_FOUND', `VM ${rec.name} has no block node ${node} for disk ${name}`, { context: { vm: rec.name, disk: name, node } });
  if (bytes < cur) {
    throw new VmError('VM_DISK_SHRINK', `disk ${name} of VM ${rec.name} is ${cur} bytes; shrinking it to ${bytes} is refused (the guest's data past the end would be lost)`, {
      context: { vm: rec.name, disk: name, fromBytes: cur, toBytes: bytes }, suggestions: ['give a size at least as large as the current one'],
    });
  }
  if (bytes > cur) await q.execute('block_resize', { 'node-name': node, size: bytes });
  return { vm: rec.name, disk: name, node, fromBytes: cur, toBytes: bytes };
}
