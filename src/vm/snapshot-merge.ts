/**
 * @module vm/snapshot-merge: deleting an external snapshot while the VM runs: the layer made over
 * the snapshot's frozen base is merged into it by QEMU (block-commit; the active layer with
 * job-complete), then QEMU lets go of it (blockdev-del, remove-fd) and its file is removed.
 */
import { closeSync, constants as C } from 'node:fs';
import { dirname, relative } from 'node:path';
import { openCheckedSync, ownerAccessCheck, ownerFromUid } from '../image/index.js';
import { planSnapshotMerge, type LiveLayer } from '../plan/index.js';
import type { Disk } from '../spec/index.js';
import { VmError } from './errors.js';
import { releaseStep } from './hotplug.js';
import type { QmpConn } from './ports.js';
import type { VmRecord } from './record.js';
import { claimIds, removeFiles, type FileId } from './snapshot-dir.js';
import { disksOf, info, liveChain, notFound, recover, save, state, walk, type SnapshotResult } from './snapshot.js';
import type { TeardownDeps } from './teardown.js';

/**
 * After a merge that gave the base's fdset a read-write fd: only the fds of the mode QEMU holds
 * the base in now stay (it stays read-write after a commit, active or not; QEMU 7.2). An unused
 * open file of the image keeps the image locks QEMU took through it, and the next reopen of
 * the base fails on them ("Failed to get write lock"); a missing one fails the reopen too.
 */
async function dropStaleFds(q: QmpConn, base: LiveLayer, rwName: string): Promise<void> {
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; ro: boolean }>;
  const rw = nodes.find((x) => x['node-name'] === base.file)?.ro === false;
  const sets = (await q.execute('query-fdsets')) as Array<{ 'fdset-id': number; fds: Array<{ fd: number; opaque?: string }> }>;
  for (const f of sets.find((s) => s['fdset-id'] === base.fdset)?.fds ?? []) {
    if ((f.opaque === rwName) !== rw) await q.execute('remove-fd', { 'fdset-id': base.fdset, fd: f.fd }).catch(() => undefined);
  }
}

/** The node the guest's device of disk `disk` reads and writes now (its BlockBackend's root). */
async function deviceTop(q: QmpConn, disk: string): Promise<string | undefined> {
  const blocks = (await q.execute('query-block')) as Array<{ qdev?: string; inserted?: { 'node-name'?: string } }>;
  return blocks.find((b) => b.qdev === `/machine/peripheral/disk-${disk}/virtio-backend` || b.qdev === `disk-${disk}`)?.inserted?.['node-name'];
}

/**
 * Opens the snapshot's base read-write for QEMU's commit through the image module's check-before-open
 * (held O_PATH through no swapped symlink, reopened by /proc/self/fd of that fd), as the layer the
 * record claims for this run (dev, ino): a directory on its path swapped for a symlink since, or
 * another file under its name, is refused (IMAGE_CHANGED) before anything is changed. The VM's
 * owner must be able to write it (IMAGE_OWNER_DENIED), as start checks for a writable top.
 */
function openBase(rec: VmRecord, snap: string, base: string, disk: Disk): number {
  const claim = rec.disks?.find((c) => c.path === base);
  if (claim === undefined) {
    throw new VmError('VM_SNAPSHOT_FAILED', `VM ${rec.name}: the base ${base} of snapshot ${snap} is not among the layers its run holds; it is not opened`, { context: { vm: rec.name, snapshot: snap, path: base } });
  }
  const owner = rec.owner === undefined ? null : ownerFromUid(rec.owner);
  const check = owner === null ? null : ownerAccessCheck(owner);
  return openCheckedSync(base, {
    flags: C.O_RDWR | (disk.cache === 'none' ? C.O_DIRECT : 0), kinds: ['file'], expect: { dev: claim.dev, ino: claim.ino },
    doing: `reopening the base of snapshot ${snap} read-write for VM ${rec.name}:`, ...(check === null ? {} : { guard: (t) => check(t, 'the snapshot base', true) }),
  }).fd;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a commit job to its end: READY then job-complete for an active commit; its error if it failed. */
async function runJob(q: QmpConn, id: string, active: boolean, vm: string): Promise<void> {
  let completed = false;
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(10)) {
    const jobs = (await q.execute('query-jobs')) as Array<{ id: string; status: string; error?: string }>;
    const j = jobs.find((x) => x.id === id);
    if (j === undefined) return;
    if (j.status === 'ready' && active && !completed) { await q.execute('job-complete', { id }); completed = true; }
    if (j.status === 'concluded') {
      await q.execute('job-dismiss', { id });
      if (j.error !== undefined) throw new VmError('VM_SNAPSHOT_FAILED', `VM ${vm}: the commit job ${id} failed: ${j.error}`, { context: { vm, job: id } });
      return;
    }
  }
  throw new VmError('VM_TIMEOUT', `VM ${vm}: the commit job ${id} did not end within 600 s`, { context: { vm, job: id } });
}

/**
 * Deletes snapshot `snap`: its frozen layer is no longer needed, so the layer made over it is
 * merged into it while the VM runs (block-commit; active layer: job-complete after READY), then
 * QEMU lets go of the merged layer (blockdev-del, remove-fd) and its file is removed. A snapshot
 * whose layer is no longer in the chain (after a revert to an earlier one) only loses its files.
 */
export async function deleteSnapshot(d: TeardownDeps, rec: VmRecord, q: QmpConn | null, snap: string): Promise<{ record: VmRecord; result: SnapshotResult }> {
  rec = await recover(d, rec, q);
  const st = state(rec);
  const s = st.list.find((x) => x.name === snap);
  if (s === undefined) throw notFound(rec, snap);
  const others = st.list.filter((x) => x !== s);
  const steps: string[] = [];
  const gone: string[] = [];
  const renames = new Map<string, string>();
  // First every disk's checks, and its base opened (before anything is recorded: a refusal changes nothing), then the merges.
  const merges: Array<{ e: (typeof s.disks)[number]; disk: Disk; fd: number }> = [];
  try {
    for (const e of s.disks) {
      const disk = disksOf(rec).find((x) => x.name === e.disk);
      const chain = disk === undefined ? [] : (await walk(rec, disk, `disks[${e.disk}]`)).layers.map((l) => l.path);
      const at = chain.indexOf(e.base);
      const shared = others.find((o) => o.disks.some((y) => y.chain.includes(e.base) && !chain.includes(y.base)));
      if (at > 0 && shared !== undefined) {
        throw new VmError('VM_SNAPSHOT_FAILED', `snapshot ${snap} of VM ${rec.name} cannot be merged: snapshot ${shared.name} (reverted away from) still builds on its layer ${e.base}`, {
          context: { vm: rec.name, snapshot: snap, other: shared.name }, suggestions: [`delete snapshot ${shared.name} first`],
        });
      }
      if (at <= 0) { // not in the chain: nothing to merge; its base goes if the manager made it and nothing else uses it
        if (!others.some((o) => o.disks.some((y) => y.chain.includes(e.base))) && st.owned.includes(e.base) && at < 0) gone.push(e.base);
        continue;
      }
      if (q === null) {
        throw new VmError('VM_INVALID_STATE', `snapshot ${snap} of VM ${rec.name} is merged while the VM runs (QEMU does the block-commit); the VM is ${rec.phase}`, {
          context: { vm: rec.name, snapshot: snap, phase: rec.phase, needsQemu: true }, suggestions: [`start it first: warden start ${rec.name}, then warden snapshot delete ${rec.name} ${snap}`],
        });
      }
      merges.push({ e, disk: disk!, fd: openBase(rec, snap, e.base, disk!) });
    }
    for (const { e, disk, fd } of merges) {
      if (q === null) break; // (merges is empty then)
      rec = await save(d, rec, { ...state(rec), list: state(rec).list.map((x) => (x.name === snap ? { ...x, deleting: true } : x)) });
      const live = await liveChain(rec, q, disk);
      const base = live.findIndex((l) => l.path === e.base);
      const above = live[base - 2];
      const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; ro: boolean }>;
      const baseReadOnly = nodes.find((x) => x['node-name'] === live[base]!.file)?.ro !== false;
      const plan = planSnapshotMerge({ disk: disk, chain: live, base, backingName: above === undefined ? '' : relative(dirname(above.path), e.base), jobId: `commit-${e.disk}`, baseReadOnly });
      const existing = ((await q.execute('query-jobs')) as Array<{ id: string }>).some((j) => j.id === `commit-${e.disk}`);
      // A killed delete whose active commit QEMU finished: the device is on the base already; committing again would write under the guest.
      const merged = plan.active && !existing && (await deviceTop(q, e.disk)) === live[base]!.node;
      if (!existing && !merged) { // a killed delete may have left its job running: it is waited for, not started again
        for (const p of plan.prepare) { await q.execute(p.command, p.args, 10_000, p.fd === undefined || plan.fd === null ? undefined : [fd]); steps.push(p.command); }
        await q.execute(plan.commit.command, plan.commit.args);
      }
      if (!merged) {
        steps.push('block-commit');
        await runJob(q, `commit-${e.disk}`, plan.active, rec.name);
        if (plan.active) steps.push('job-complete');
      }
      for (const u of plan.release) { await releaseStep(q, u).catch(() => undefined); steps.push(u.command); }
      if (plan.fd !== null) await dropStaleFds(q, live[base]!, plan.fd.name);
      const layer = live[base - 1]!;
      gone.push(layer.path);
      renames.set(layer.path, e.base);
      const newLive = live.filter((_, i) => i !== base - 1);
      if (plan.active && rec.disks !== undefined) rec = { ...rec, disks: rec.disks.map((c) => (c.path === e.base ? { ...c, writable: true } : c)) };
      const st2 = state(rec);
      rec = await save(d, rec, { ...st2, live: { run: rec.run!.startedAt, seq: st2.live?.run === rec.run!.startedAt ? st2.live.seq : 0, disks: { ...(st2.live?.run === rec.run!.startedAt ? st2.live.disks : {}), [e.disk]: newLive } } },
        { spec: { ...rec.spec, disks: disksOf(rec).map((x) => (x.name === e.disk && x.image === layer.path ? { ...x, image: e.base, format: e.baseFormat } : x)) } });
    }
  } finally {
    for (const x of merges) closeSync(x.fd);
  }
  const st3 = state(rec);
  // Snapshots built on a merged layer now build on the layer it went into (same content).
  const list = st3.list.filter((x) => x.name !== snap).map((x) => ({ ...x, disks: x.disks.map((y) => ({ ...y, base: renames.get(y.base) ?? y.base, chain: y.chain.filter((p) => !renames.has(p)) })) }));
  const files = [...gone, ...(s.memory === undefined ? [] : [s.memory])];
  // Removed only where identified: the merged layers by the record's claims (dev, ino), the rest by the directories the snapshots recorded.
  const ids = claimIds(rec.disks);
  const dirs = Object.assign({}, ...st3.list.map((x) => x.dirs ?? {})) as Record<string, FileId>;
  rec = await save(d, rec, { ...st3, list, owned: st3.owned.filter((f) => !files.includes(f)) },
    { ...(rec.disks === undefined ? {} : { disks: rec.disks.filter((c) => !gone.includes(c.path)) }) });
  removeFiles(rec.name, files, dirs, ids);
  return { record: rec, result: { vm: rec.name, snapshot: info({ ...rec, snapshots: { ...state(rec), list: [s] } }, s), steps } };
}

