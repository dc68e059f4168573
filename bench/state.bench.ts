/**
 * @module bench/state: `warden save` and `warden restore` of a booted test guest (in-process,
 * jailed), each next to QEMU's own figure from the same run: save beside query-migrate's
 * total-time, restore beside a plain start of the same VM.
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { median, n, type Benchmark, type BenchRow } from './lib.js';
import { GUEST_READY_LINE, openManager, testEnv, waitForText } from '../src/vm/index.js';

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
