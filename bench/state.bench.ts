/**
 * @module bench/state: `warden save` and `warden restore` of a booted test guest (in-process,
 * jailed), each next to QEMU's own figure from the same run: save beside query-migrate's
 * total-time, restore beside a plain start of the same VM. And `warden snapshot create` /
 * `delete` of the running guest beside the same QMP commands sent by hand on one held
 * connection (overlay prepared beforehand, no policy walk, no record, no lock).
 */
import { closeSync, constants as C, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median, n, type Benchmark, type BenchRow } from './lib.js';
import { qcow2Overlay } from '../src/image/index.js';
import { planSnapshotCreate, planSnapshotMerge, type LiveLayer } from '../src/plan/index.js';
import { QmpClient } from '../src/qmp/index.js';
import { DiskSchema } from '../src/spec/index.js';
import { GUEST_READY_LINE, openManager, testEnv, waitForText, type VmManager } from '../src/vm/index.js';

const RUNS = n(5, 1);

async function readyCount(log: string, count: number): Promise<void> {
  for (const deadline = Date.now() + 90_000; ;) {
    const s = await waitForText(log, GUEST_READY_LINE, 90_000);
    if (s.split(GUEST_READY_LINE).length - 1 >= count) return;
    if (Date.now() > deadline) throw new Error(`the guest did not boot a ${count}th time: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const benchmarks: Benchmark[] = [{
  group: 'state',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-state-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    const name = `wds-bench-${process.pid}`;
    try {
      await m.create(env.specFile({ name }));
      const start: number[] = [];
      const save: number[] = [];
      const qemuTotal: number[] = [];
      const downtime: number[] = [];
      const restore: number[] = [];
      const incoming: number[] = [];
      let mib = 0;
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        await m.start(name);
        start.push(performance.now() - t0);
        // A booted guest (its RAM in use): this run's ready line, the log keeps the earlier runs'.
        await readyCount(m.store.paths(name).serialLog, i + 1);
        const file = join(env.dir, `state-${i}`);
        const t1 = performance.now();
        const s = await m.save(name, file);
        save.push(performance.now() - t1);
        qemuTotal.push(s.migration.totalTimeMs ?? Number.NaN);
        downtime.push(s.migration.downtimeMs ?? Number.NaN);
        mib = statSync(file).size / 1048576;
        const t2 = performance.now();
        const r = await m.restore(file);
        restore.push(performance.now() - t2);
        incoming.push(r.run.timings['incoming'] ?? Number.NaN);
        await m.kill(name);
        rmSync(file, { force: true });
      }
      const qemu = { name: `QEMU's total-time for the same migration (query-migrate; the file has ${mib.toFixed(1)} MiB)`, value: median(qemuTotal) };
      return [
        { group: 'state', name: 'warden save → stopped (pause, migrate to the fd, quit; in-process)', value: median(save), unit: 'ms', baseline: qemu },
        { group: 'state', name: '  QEMU downtime of that save (query-migrate; the vCPUs were stopped before migrate, so only the final phase counts)', value: median(downtime), unit: 'ms' },
        { group: 'state', name: 'warden restore → running (jailed, migrate-incoming on the fd, cont)', value: median(restore), unit: 'ms',
          baseline: { name: 'start → running of the same VM, same run (no state to load)', value: median(start) } },
        { group: 'state', name: '  of which step "incoming" (migrate-incoming until completed)', value: median(incoming), unit: 'ms' },
      ];
    } finally {
      for (const v of await m.store.list()) await m.kill(v).catch(() => undefined);
      env.cleanup();
    }
  },
}];

/** A commit job to its end by hand: job-complete once READY (active commit), dismissed once concluded. */
async function commitDone(q: QmpClient, id: string): Promise<void> {
  for (let completed = false; ; await new Promise((r) => setTimeout(r, 5))) {
    const j = ((await q.executeUntyped('query-jobs')) as Array<{ id: string; status: string }>).find((x) => x.id === id);
    if (j === undefined) return;
    if (j.status === 'ready' && !completed) { await q.executeUntyped('job-complete', { id }); completed = true; }
    if (j.status === 'concluded') { await q.executeUntyped('job-dismiss', { id }); return; }
  }
}

/** The same snapshot by hand on one held connection: add-fd, blockdev-add x2, transaction; then the merge back (add-fd, blockdev-reopen, block-commit, job-complete, blockdev-del x2, remove-fd). */
async function rawSnapshot(m: VmManager, vm: string, dir: string, k: number): Promise<{ create: number; del: number }> {
  const disk = DiskSchema.parse({ name: 'root', image: join(dir, 'disk.qcow2'), format: 'qcow2' });
  const overlay = join(dir, `raw-${k}.qcow2`);
  writeFileSync(overlay, qcow2Overlay({ virtualSize: 64 << 20, backing: 'disk.qcow2', backingFormat: 'qcow2' }));
  const q = await QmpClient.connect({ path: m.store.paths(vm).qmpSocket });
  try {
    const sets = (await q.executeUntyped('query-fdsets')) as Array<{ 'fdset-id': number; fds: Array<{ opaque?: string }> }>;
    const fdset = (o: string): number => sets.find((x) => x.fds.some((f) => f.opaque === o))!['fdset-id'];
    const top: LiveLayer = { path: disk.image, format: 'qcow2', node: 'root-0-fmt', file: 'root-0-file', fdset: fdset('disk-root-0') };
    const below: LiveLayer = { path: join(dir, 'base.qcow2'), format: 'qcow2', node: 'root-1-fmt', file: 'root-1-file', fdset: fdset('disk-root-1') };
    const plan = planSnapshotCreate([{ disk, top, path: overlay, tag: `raw${k}` }], sets.map((x) => x['fdset-id']));
    const t0 = performance.now();
    const fd = openSync(overlay, C.O_RDWR);
    for (const st of plan.steps) await q.executeUntyped(st.command, st.args, st.fd === undefined ? {} : { fds: [fd] });
    closeSync(fd);
    await q.executeUntyped(plan.transaction.command, plan.transaction.args);
    const create = performance.now() - t0;
    const merge = planSnapshotMerge({ disk, chain: [plan.layers['root']!, top, below], base: 1, backingName: '', jobId: `raw-${k}`, baseReadOnly: false });
    const t1 = performance.now();
    for (const st of merge.prepare) await q.executeUntyped(st.command, st.args);
    await q.executeUntyped(merge.commit.command, merge.commit.args);
    await commitDone(q, `raw-${k}`);
    for (const u of merge.release) await q.executeUntyped(u.command, u.args);
    const del = performance.now() - t1;
    rmSync(overlay, { force: true });
    return { create, del };
  } finally {
    await q.close();
  }
}

benchmarks.push({
  group: 'state',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-snap-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    const name = `wdsn-bench-${process.pid}`;
    try {
      await m.create(env.specFile({ name }));
      await m.start(name);
      await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 90_000);
      const create: number[] = [];
      const del: number[] = [];
      const rawCreate: number[] = [];
      const rawDel: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await rawSnapshot(m, name, env.dir, i);
        rawCreate.push(r.create);
        rawDel.push(r.del);
        const t0 = performance.now();
        await m.snapshotCreate(name, { snap: `b${i}` });
        create.push(performance.now() - t0);
        const t1 = performance.now();
        await m.snapshotDelete(name, `b${i}`);
        del.push(performance.now() - t1);
      }
      return [
        { group: 'state', name: 'warden snapshot create, running VM, 1 disk (lock, policy walks, overlay written + fsync, records, add-fd/blockdev-add/transaction)', value: median(create), unit: 'ms',
          baseline: { name: 'the same QMP commands by hand on one held connection (overlay prepared beforehand)', value: median(rawCreate) } },
        { group: 'state', name: 'warden snapshot delete, running VM (block-commit of the active layer, job-complete, blockdev-del, remove-fd)', value: median(del), unit: 'ms',
          baseline: { name: 'the same QMP commands by hand on one held connection', value: median(rawDel) } },
      ];
    } finally {
      for (const v of await m.store.list()) await m.kill(v).catch(() => undefined);
      env.cleanup();
    }
  },
});
