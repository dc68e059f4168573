/**
 * @module bench/migrate: live migration of a booted test guest between two daemons of this
 * process (two state roots, the stream over loopback TCP on manager-made sockets, storage
 * shared), each figure next to QEMU's own (query-migrate) for the same migration.
 */
import { median, n, type Benchmark, type BenchRow } from './lib.js';
import { DaemonService, GUEST_READY_LINE, testEnv, waitForText, type MigrationTarget } from '../src/vm/index.js';
import { join } from 'node:path';

const RUNS = n(4, 1);

/** Daemon `to` as a migration target, called in-process (what POST /v1/migrations/incoming does). */
function inProcess(to: DaemonService, label: string): MigrationTarget {
  return {
    to: label,
    async prepare({ name, spec }) {
      const inc = await to.migrateIn(spec, { name, listenHost: '127.0.0.1' });
      return { address: inc.address, finish: () => inc.done };
    },
  };
}

export const benchmarks: Benchmark[] = [{
  group: 'migrate',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-migrate-bench-');
    const name = `wdm-bench-${process.pid}`;
    const a = await DaemonService.open({ stateDir: join(env.dir, 'a'), socket: join(env.dir, 'a.sock') });
    const b = await DaemonService.open({ stateDir: join(env.dir, 'b'), socket: join(env.dir, 'b.sock') });
    const wall: number[] = [];
    const total: number[] = [];
    const downtime: number[] = [];
    const cont: number[] = [];
    let mib = 0;
    try {
      await a.create({ file: env.specFile({ name, cmdline: 'warden.tick=1' }) });
      await a.start(name);
      await waitForText(join(env.dir, 'a', 'vms', name, 'serial.log'), GUEST_READY_LINE, 90_000);
      let [from, to] = [a, b];
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        const r = await from.migrate(name, inProcess(to, 'the other daemon'));
        wall.push(performance.now() - t0);
        total.push(r.migration.totalTimeMs ?? Number.NaN);
        downtime.push(r.migration.downtimeMs ?? Number.NaN);
        cont.push((r.target as { timings?: Record<string, number> }).timings?.['cont'] ?? Number.NaN);
        mib = (r.migration.transferredBytes ?? 0) / 1048576;
        [from, to] = [to, from];
      }
      return [
        { group: 'migrate', name: `warden migrate → running on the other daemon (shared storage, loopback TCP; ${mib.toFixed(1)} MiB of RAM sent)`, value: median(wall), unit: 'ms',
          baseline: { name: 'QEMU\'s total-time of the same migration (query-migrate)', value: median(total) } },
        { group: 'migrate', name: '  guest pause: QEMU downtime + the target\'s cont step (the target polls completion every 50 ms on top)', value: median(downtime) + median(cont), unit: 'ms',
          // A downtime QEMU rounds to 0 ms makes no ratio: the row then stands alone.
          ...(median(downtime) > 0 ? { baseline: { name: 'QEMU\'s downtime (query-migrate)', value: median(downtime) } } : {}) },
      ];
    } finally {
      for (const d of [a, b]) for (const v of await d.list()) await d.kill(v.name).catch(() => undefined);
      await a.close();
      await b.close();
      env.cleanup();
    }
  },
}];
