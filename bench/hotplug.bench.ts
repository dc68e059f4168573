/**
 * @module bench/hotplug: disk attach and detach latency (3-layer chain) through the manager,
 * next to the raw QMP commands for the same device (add-fd, blockdev-add x6, device_add; then
 * device_del, DEVICE_DELETED, blockdev-del, remove-fd) on one held connection, same QEMU, same run.
 */
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { le, median, n, type Benchmark, type BenchRow } from './lib.js';
import { walkChainConfined, loadHostPolicy } from '../src/image/index.js';
import { planDiskAttach, planDiskDetach } from '../src/plan/index.js';
import { QmpClient } from '../src/qmp/index.js';
import { DiskSchema } from '../src/spec/index.js';
import { GUEST_READY_LINE } from '../src/vm/guest.js';
import { openFlags } from '../src/vm/fds.js';
import { releaseStep } from '../src/vm/hotplug.js';
import { openManager, testEnv, waitForText, type VmManager } from '../src/vm/index.js';
import { nicRows } from './hotplug-nic.js';

const RUNS = n(10, 1);

/** The same device by hand: the planner's steps replayed on one connection, without policy walk, claims or records. */
async function raw(m: VmManager, vm: string, image: string): Promise<{ attach: number; detach: number }> {
  const disk = DiskSchema.parse({ name: 'raw', image, format: 'qcow2' });
  const chain = await walkChainConfined({ ...disk, from: 'bench' }, loadHostPolicy());
  const q = await QmpClient.connect({ path: m.store.paths(vm).qmpSocket });
  try {
    const fdsets = ((await q.executeUntyped('query-fdsets')) as Array<{ 'fdset-id': number }>).map((f) => f['fdset-id']);
    const buses = (await q.executeUntyped('query-pci')) as Array<{ bus: number; devices: Array<{ slot: number }> }>;
    const pciSlots = buses.filter((b) => b.bus === 0).flatMap((b) => b.devices.map((x) => x.slot));
    const plan = planDiskAttach(disk, chain, { machine: 'pc', fdsets, pciSlots, freePorts: [], diskNames: [] });
    const t0 = performance.now();
    const fds = new Map(plan.fds.map((f) => [f.name, openSync(f.path, openFlags(f.flags))]));
    for (const s of plan.steps) await q.executeUntyped(s.command, s.args, s.fd === undefined ? {} : { fds: [fds.get(s.fd)!] });
    for (const fd of fds.values()) closeSync(fd);
    const attach = performance.now() - t0;
    const t1 = performance.now();
    const [del, ...rest] = planDiskDetach(plan.steps);
    const ev = q.events(['DEVICE_DELETED']); // before device_del, as vm/hotplug does
    await q.executeUntyped(del!.command, del!.args);
    await ev.next({ match: (e) => e.data.device === plan.deviceId });
    ev.close();
    for (const u of rest) await releaseStep({ execute: (c, a) => q.executeUntyped(c, a), close: async () => undefined }, u);
    return { attach, detach: performance.now() - t1 };
  } finally {
    await q.close();
  }
}

export const benchmarks: Benchmark[] = [{
  group: 'hotplug',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-hotplug-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    const name = `wdv-hpbench-${process.pid}`;
    try {
      const base = join(env.dir, 'b.raw');
      writeFileSync(base, Buffer.alloc(1 << 20));
      const img = (...a: string[]): void => { if (spawnSync('qemu-img', a).status !== 0) throw new Error(`qemu-img ${a.join(' ')} failed`); };
      img('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', join(env.dir, 'm.qcow2'));
      img('create', '-q', '-f', 'qcow2', '-b', join(env.dir, 'm.qcow2'), '-F', 'qcow2', join(env.dir, 't.qcow2'));
      const file = env.specFile({ name });
      const spec = JSON.parse(readFileSync(file, 'utf8')) as object;
      writeFileSync(file, JSON.stringify({ ...spec, machine: 'pc' }));
      await m.create(file);
      await m.start(name);
      await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 90_000); // the guest must answer device_del
      const top = join(env.dir, 't.qcow2');
      const att: number[] = []; const det: number[] = []; const rawA: number[] = []; const rawD: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        let t = performance.now();
        await m.attachDisk(name, { name: 'd', image: top, format: 'qcow2', liveOnly: true });
        att.push(performance.now() - t);
        t = performance.now();
        const r = await m.detachDisk(name, 'd', { liveOnly: true, waitMs: 30_000 });
        det.push(performance.now() - t);
        if (r.state !== 'detached') throw new Error(`detach ended ${r.state}`);
        const x = await raw(m, name, top);
        rawA.push(x.attach); rawD.push(x.detach);
      }
      return [
        { group: 'hotplug', name: 'disk attach, 3-layer chain (warden, in-process)', value: median(att), unit: 'ms', baseline: { name: 'raw QMP: add-fd x3, blockdev-add x6, device_add', value: median(rawA) }, goal: le(2) },
        { group: 'hotplug', name: 'disk detach (guest releases it)', value: median(det), unit: 'ms', baseline: { name: 'raw QMP: device_del, wait, blockdev-del x6, remove-fd x3', value: median(rawD) }, goal: le(1.5) },
        ...(await nicRows(m, name)), // bench/hotplug-nic: NIC attach/detach on the same guest
      ];
    } finally {
      for (const v of await m.store.list()) await m.kill(v).catch(() => undefined);
      env.cleanup();
    }
  },
}];
