/**
 * @module vm/hotplug-nic: attaching and detaching NICs of a running VM by fd. The pure
 * planner (plan/hotplug-nic) gives the host actions and QMP steps; the TAP is made on its
 * bridge by src/net (its undo log journalled into the record as it grows), its fds go to
 * QEMU with getfd, then netdev_add and device_add. Every step is recorded before the first
 * is made, so a manager killed midway is undone by the next NIC command (`recoverNics`).
 */
import { closeSync } from 'node:fs';
import { planNicAttach, type Facts, type NicAttachPlan } from '../plan/index.js';
import { NetworkSchema, type Network, type Spec } from '../spec/index.js';
import { WardenError } from '../errors/index.js';
import { VmError } from './errors.js';
import { stateRootScope } from './facts.js';
import { entriesOf, liveAllocations, save, waitDeviceGone } from './hotplug.js';
import { startNicHelper, stopNicHelper } from './hotplug-passt.js';
import type { QmpConn } from './ports.js';
import type { HelperRun, HotplugEntry, UndoRecord, VmRecord } from './record.js';
import type { TeardownDeps } from './teardown.js';

export interface NicAttachRequest {
  name: string;
  type: 'bridge' | 'ovs' | 'user';
  bridge?: string;
  vlan?: number;
  mac?: string;
  liveOnly?: boolean;
}

export interface NicHotplugResult {
  vm: string;
  nic: string;
  deviceId: string;
  mac: string;
  state: 'attached' | 'removing' | 'detached';
  /** Steps made, in order (host actions, then QMP command names). */
  steps: string[];
  liveOnly: boolean;
}

const nicsOf = (rec: VmRecord): HotplugEntry[] => entriesOf(rec).filter((e) => e.kind === 'nic');
const networksOf = (rec: VmRecord): Network[] => (rec.spec['networks'] as Network[] | undefined) ?? [];

/**
 * The record with entry `name` replaced (or dropped when `next` is null), and the VM's undo
 * journal carrying the NIC's host log as one `net` entry, so a stop, kill or crash of the VM
 * undoes it with the rest of the run (an OVS port outlives its TAP).
 */
function withNic(rec: VmRecord, prev: HotplugEntry | undefined, next: HotplugEntry | null): { entries: HotplugEntry[]; undo: UndoRecord[] } {
  const same = (u: UndoRecord): boolean => (u.kind === 'net' && prev?.net !== undefined && JSON.stringify(u.log) === JSON.stringify(prev.net))
    || (u.kind === 'helper' && prev?.helper !== undefined && u.jailName === prev.helper.jailName);
  const undo = (rec.undo ?? []).filter((u) => !same(u));
  if (next?.net !== undefined) undo.push({ kind: 'net', log: next.net });
  if (next?.helper !== undefined) undo.push({ kind: 'helper', ...next.helper });
  const entries = entriesOf(rec).filter((e) => e !== prev && !(e.kind === 'nic' && e.name === (prev ?? next)?.name));
  return { entries: next === null ? entries : [...entries, next], undo };
}

async function put(d: TeardownDeps, rec: VmRecord, prev: HotplugEntry | undefined, next: HotplugEntry | null, extra: Partial<VmRecord> = {}): Promise<VmRecord> {
  const { entries, undo } = withNic(rec, prev, next);
  const gone = prev?.helper !== undefined && next === null ? prev.helper.jailName : undefined;
  const helpers = gone === undefined ? {} : { helpers: (rec.helpers ?? []).filter((h) => h.jailName !== gone) };
  return save(d, rec, entries, { ...helpers, ...extra, undo });
}

/** Runs a QMP inverse, ignoring "not found" and the like: a step begun may not have been made. */
async function quietly(q: QmpConn, u: { command: string; args: Record<string, unknown> } | null): Promise<void> {
  if (u !== null) await q.execute(u.command, u.args, 5000).catch(() => undefined);
}

/** Undoes one NIC's begun steps (device first, then netdev, then the fds QEMU was given) and its host changes. */
async function undoNic(d: TeardownDeps, q: QmpConn, e: HotplugEntry): Promise<void> {
  const undo = e.steps.slice(0, e.begun).map((s) => s.undo).reverse();
  for (const u of undo) {
    await quietly(q, u);
    // netdev_del of a netdev whose device the guest still holds would leave the NIC without a backend until it goes.
    if (u?.command === 'device_del') await waitDeviceGone(q, e.deviceId, 5000).catch(() => false);
  }
  if (e.net !== undefined) await d.backends.net.undo(e.net);
  if (e.helper !== undefined) await stopNicHelper(d, e.helper);
}

/**
 * Undoes every NIC attach a killed process left half done (QMP inverses, last first, then the
 * TAP and its bridge port, the helper), and finishes every removal the guest has since answered
 * (but NIC `keep`'s, which the caller, its detach, finishes itself).
 */
export async function recoverNics(d: TeardownDeps, rec: VmRecord, q: QmpConn, keep?: string): Promise<VmRecord> {
  for (const e of nicsOf(rec).filter((x) => x.name !== keep)) {
    if (e.state === 'attaching') {
      await undoNic(d, q, e);
      rec = await put(d, rec, e, null);
    } else if (e.state === 'removing' && (await waitDeviceGone(q, e.deviceId, 0))) {
      rec = (await release(d, rec, q, e)).rec;
    }
  }
  return rec;
}

function refuse(rec: VmRecord, n: Network, plan: NicAttachPlan): VmError {
  return new VmError('VM_HOTPLUG_FAILED', `cannot attach NIC ${n.name} to VM ${rec.name}: ${plan.issues.map((i) => i.message).join('; ')}`, {
    context: { vm: rec.name, nic: n.name, issues: plan.issues }, suggestions: plan.issues.flatMap((i) => (i.suggestion === undefined ? [] : [i.suggestion])),
  });
}

/**
 * The planned NIC, refused before anything happens when the plan has issues. User networking
 * needs the host's facts about passt (its view for the helper's jail), gathered as start does
 * for a spec holding just this NIC.
 */
async function planFor(d: TeardownDeps, rec: VmRecord, q: QmpConn, n: Network): Promise<NicAttachPlan> {
  const spec = rec.spec as unknown as Spec;
  const live = await liveAllocations(q);
  const nicNames = [...networksOf(rec).map((x) => x.name), ...nicsOf(rec).map((e) => e.name)];
  const facts = n.type === 'user'
    ? (await d.backends.facts({ ...spec, disks: [], networks: [n] }, d.store.root, rec.owner === undefined ? {} : { owner: rec.owner })).facts
    : { host: {}, scope: stateRootScope(d.store.root) } as unknown as Facts;
  const plan = planNicAttach(spec, n, facts, { machine: spec.machine ?? 'q35', ...live, diskNames: [], nicNames });
  if (plan.issues.length > 0) throw refuse(rec, n, plan);
  return plan;
}

/**
 * The host side of a NIC, made before QEMU hears of it: the TAP and its bridge port (their undo
 * log journalled into the entry as it grows), or the helper (recorded before its launch).
 * Returns the fds for getfd by name.
 */
interface HostSideHooks {
  entry(): HotplugEntry;
  /** Writes the entry (and the run's undo journal with it). */
  record(e: HotplugEntry): Promise<void>;
  /** Adds a started helper to the record's `helpers`. */
  addHelper(run: HelperRun): Promise<void>;
}

async function hostSide(d: TeardownDeps, vm: string, plan: NicAttachPlan, o: HostSideHooks): Promise<Map<string, number>> {
  let journalled: unknown;
  const fds = plan.actions.length === 0 ? new Map<string, number>() : await d.backends.net.apply(vm, plan.actions, async (log) => {
    // A copy: the net module keeps growing the same log object.
    if (JSON.stringify(log) === JSON.stringify(journalled)) return;
    journalled = structuredClone(log);
    await o.record({ ...o.entry(), net: journalled });
  });
  try {
    for (const h of plan.helpers) {
      const helper = { jailName: h.jail.name, owner: d.store.paths(vm).dir };
      const started = await startNicHelper(d, vm, h, () => o.record({ ...o.entry(), helper }));
      fds.set(h.fds[0]!.name, started.qemuEnd);
      await o.addHelper(started.run);
    }
  } catch (err) {
    for (const fd of fds.values()) closeSync(fd);
    throw err;
  }
  return fds;
}

/** The request as the spec's Network (defaults filled in); SPEC_VALUE naming every bad field. */
function networkOf(rec: VmRecord, req: NicAttachRequest): Network {
  const r = NetworkSchema.safeParse({ name: req.name, type: req.type, ...(req.bridge === undefined ? {} : { bridge: req.bridge }), ...(req.vlan === undefined ? {} : { vlan: req.vlan }), ...(req.mac === undefined ? {} : { mac: req.mac }) });
  if (r.success) return r.data;
  const bad = r.error.issues.map((i) => `${i.path.join('.') || 'nic'}: ${i.message}`);
  throw new WardenError('SPEC_VALUE', `cannot attach NIC ${req.name} to VM ${rec.name}: ${bad.join('; ')}`, { context: { vm: rec.name, nic: req.name, issues: bad } });
}

export async function attachNic(d: TeardownDeps, rec: VmRecord, q: QmpConn, req: NicAttachRequest): Promise<{ record: VmRecord; result: NicHotplugResult }> {
  rec = await recoverNics(d, rec, q);
  const n = networkOf(rec, req);
  const plan = await planFor(d, rec, q, n);
  const mac = String(plan.steps.find((s) => s.command === 'device_add')?.args['mac']);
  // Write-ahead: every QMP step is recorded as possibly made before the first is made. All names
  // (fd names, netdev and device ids) are fresh, so the inverse of a step never made only fails.
  // The entry is first written with the net module's journal (each host change is journalled as
  // it is made; until then the only change is a TAP whose one fd is ours, gone if we die), which
  // saves two fsync'd record writes per attach.
  let entry: HotplugEntry = { kind: 'nic', name: n.name, run: rec.run?.startedAt ?? '', deviceId: plan.deviceId, state: 'attaching', steps: plan.steps, begun: plan.steps.length, claims: [], disk: n as unknown as Record<string, unknown>, liveOnly: req.liveOnly === true };
  let saved = false;
  const record = async (next: HotplugEntry): Promise<void> => {
    rec = await put(d, rec, saved ? entry : undefined, next);
    entry = next;
    saved = true;
  };
  let fds = new Map<string, number>();
  let made = 0;
  try {
    fds = await hostSide(d, rec.name, plan, {
      entry: () => entry, record,
      addHelper: async (run) => { rec = await save(d, rec, entriesOf(rec), { helpers: [...(rec.helpers ?? []), run] }); },
    });
    if (!saved) await record(entry);
    for (const s of plan.steps) {
      await q.execute(s.command, s.args, 10_000, s.fd === undefined ? undefined : [fds.get(s.fd)!]);
      made++;
    }
  } catch (cause) {
    for (const fd of fds.values()) closeSync(fd);
    fds.clear();
    await undoNic(d, q, entry).catch(() => undefined);
    if (saved) rec = await put(d, rec, entry, null);
    const code = String((cause as { code?: unknown }).code ?? '');
    if (made === 0 && (code.startsWith('NET_') || code === 'VM_HOTPLUG_FAILED')) throw cause; // the host side's own words
    throw new VmError('VM_HOTPLUG_FAILED', `attaching NIC ${n.name} to VM ${rec.name} failed at step ${made + 1} (${plan.steps[made]?.command ?? 'the host side'}); the steps made were undone`, { context: { vm: rec.name, nic: n.name }, cause });
  } finally {
    for (const fd of fds.values()) closeSync(fd); // QEMU holds its own copies now
  }
  const attached: HotplugEntry = { ...entry, state: 'attached', attachedAt: d.now() };
  const spec = req.liveOnly === true ? rec.spec : { ...rec.spec, networks: [...networksOf(rec), n] };
  rec = await put(d, rec, entry, attached, { spec });
  return { record: rec, result: { vm: rec.name, nic: n.name, deviceId: plan.deviceId, mac, state: 'attached', steps: [...plan.actions.map((a) => a.kind), ...plan.helpers.map((h) => `helper ${h.kind}`), ...plan.steps.map((s) => s.command)], liveOnly: req.liveOnly === true } };
}

/**
 * Detaches a hot-plugged NIC: device_del, then waits (up to `waitMs`) for the guest to let
 * go; on timeout the entry stays `removing` and the next detach finishes it. Then netdev_del
 * (QEMU closes its TAP fds), closefd of any name never consumed, and the TAP and its bridge
 * port are removed.
 */
export async function detachNic(d: TeardownDeps, rec: VmRecord, q: QmpConn, name: string, o: { liveOnly?: boolean; waitMs?: number } = {}): Promise<{ record: VmRecord; result: NicHotplugResult }> {
  rec = await recoverNics(d, rec, q, name);
  const entry = nicsOf(rec).find((e) => e.name === name);
  if (entry === undefined) {
    const boot = networksOf(rec).some((x) => x.name === name);
    throw new VmError('VM_DEVICE_NOT_FOUND', `VM ${rec.name} has no hot-plugged NIC ${name}${boot ? ' (it was there at start: detaching boot-time NICs is not supported yet)' : ''}`, {
      context: { vm: rec.name, nic: name, hotplugged: nicsOf(rec).map((e) => e.name) }, suggestions: boot ? ['stop the VM and remove the NIC from its spec'] : ['warden inspect NAME shows the VM\'s NICs'],
    });
  }
  const mac = String(entry.steps.find((s) => s.command === 'device_add')?.args['mac']);
  const base = { vm: rec.name, nic: name, deviceId: entry.deviceId, mac, liveOnly: o.liveOnly === true };
  let current = entry;
  if (entry.state === 'attached') {
    // `removing.liveOnly` is the detach's: whoever finishes it changes the spec or not as asked.
    current = { ...entry, state: 'removing', removing: { since: d.now(), liveOnly: o.liveOnly === true } };
    rec = await put(d, rec, entry, current);
    await q.execute('device_del', { id: entry.deviceId });
  }
  if (!(await waitDeviceGone(q, entry.deviceId, o.waitMs ?? 10_000))) return { record: rec, result: { ...base, state: 'removing', steps: ['device_del'] } };
  const done = await release(d, rec, q, current);
  return { record: done.rec, result: { ...base, state: 'detached', steps: ['device_del', ...done.steps] } };
}

/**
 * What a NIC held once QEMU has let its device go: the netdev (QEMU closes the TAP fd or its
 * socketpair end), fd names never consumed, the TAP and bridge port, the helper; the stored
 * spec loses the NIC unless the detach was live-only.
 */
async function release(d: TeardownDeps, rec: VmRecord, q: QmpConn, e: HotplugEntry): Promise<{ rec: VmRecord; steps: string[] }> {
  const rest = e.steps.flatMap((s) => (s.undo === null || s.undo.command === 'device_del' ? [] : [s.undo])).reverse();
  for (const u of rest) await quietly(q, u);
  if (e.net !== undefined) await d.backends.net.undo(e.net);
  if (e.helper !== undefined) await stopNicHelper(d, e.helper);
  const spec = (e.removing?.liveOnly ?? e.liveOnly) ? rec.spec : { ...rec.spec, networks: networksOf(rec).filter((x) => x.name !== e.name) };
  rec = await put(d, rec, e, null, { spec });
  return { rec, steps: [...rest.map((u) => u.command), ...(e.net === undefined ? [] : ['host network undo']), ...(e.helper === undefined ? [] : ['helper stopped'])] };
}
