/**
 * @module bench/hotplug-nic: NIC attach/detach latency through the manager (TAP on a Linux
 * bridge by fd), next to the raw QMP commands for the same device (getfd, netdev_add,
 * device_add; device_del, wait, netdev_del) on one held connection with a TAP made
 * beforehand, same QEMU, same run. The rows of bench/hotplug.bench.ts's `hotplug` group.
 */
import { closeSync, openSync, constants as C } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { le, median, n, type BenchRow } from './lib.js';
import { applyHostActions, undoHostActions } from '../src/net/index.js';
import { planNicAttach, type Facts } from '../src/plan/index.js';
import { QmpClient } from '../src/qmp/index.js';
import { NetworkSchema, type Spec } from '../src/spec/index.js';
import { loadNative } from '../src/sys/index.js';
import { waitDeviceGone } from '../src/vm/hotplug.js';
import type { VmManager } from '../src/vm/index.js';

/** The planner's steps for NIC `nic` replayed by hand: the TAP is made (untimed), then only QMP is timed. */
async function raw(m: VmManager, vm: string, bridge: string, nic: string): Promise<{ host: number; attach: number; detach: number }> {
  const rec = await m.store.read(vm);
  const n = NetworkSchema.parse({ name: nic, type: 'bridge', bridge });
  const q = await QmpClient.connect({ path: m.store.paths(vm).qmpSocket });
  const conn = { execute: (c: string, a?: Record<string, unknown>) => q.executeUntyped(c, a), close: async () => undefined };
  try {
    const buses = (await q.executeUntyped('query-pci')) as Array<{ bus: number; devices: Array<{ slot: number }> }>;
    const pciSlots = buses.filter((b) => b.bus === 0).flatMap((b) => b.devices.map((x) => x.slot));
    const plan = planNicAttach(rec.spec as unknown as Spec, n, { host: {} } as unknown as Facts, { machine: 'pc', fdsets: [], pciSlots, freePorts: [], diskNames: [], nicNames: [] });
    const native = loadNative();
    const th = performance.now();
    const applied = await applyHostActions(plan.actions, { native, openDevice: (p) => openSync(p, C.O_RDWR), vm });
    const host = performance.now() - th;
    try {
      const t0 = performance.now();
      for (const s of plan.steps) await q.executeUntyped(s.command, s.args, s.fd === undefined ? {} : { fds: [applied.fds.get(s.fd)!] });
      const attach = performance.now() - t0;
      for (const fd of applied.fds.values()) closeSync(fd);
      const t1 = performance.now();
      await q.executeUntyped('device_del', { id: plan.deviceId });
      await waitDeviceGone(conn, plan.deviceId, 30_000);
      await q.executeUntyped('netdev_del', { id: plan.netdevId });
      return { host, attach, detach: performance.now() - t1 };
    } finally {
      await undoHostActions(applied.undo, {});
    }
  } finally {
    await q.close();
  }
}

/** Rows for the running pc VM `vm` of the manager `m` (its guest answers device_del); a throwaway host bridge with no address or uplink. */
export async function nicRows(m: VmManager, vm: string): Promise<BenchRow[]> {
  const bridge = `wdhb${process.pid}`.slice(0, 15);
  if (spawnSync('ip', ['link', 'add', bridge, 'type', 'bridge']).status !== 0) return [];
  try {
    spawnSync('ip', ['link', 'set', bridge, 'up']);
    const att: number[] = []; const det: number[] = []; const rawA: number[] = []; const rawD: number[] = []; const rawT: number[] = [];
    for (let i = 0; i < n(10, 1); i++) {
      let t = performance.now();
      await m.attachNic(vm, { name: 'bn', type: 'bridge', bridge, liveOnly: true });
      att.push(performance.now() - t);
      t = performance.now();
      const r = await m.detachNic(vm, 'bn', { liveOnly: true, waitMs: 30_000 });
      det.push(performance.now() - t);
      if (r.state !== 'detached') throw new Error(`NIC detach ended ${r.state}`);
      const x = await raw(m, vm, bridge, 'rn');
      rawA.push(x.attach); rawD.push(x.detach); rawT.push(x.host + x.attach);
    }
    return [
      { group: 'hotplug', name: 'NIC attach, TAP on a Linux bridge (warden, in-process: TAP made, recorded, then QMP)', value: median(att), unit: 'ms', baseline: { name: 'raw QMP: getfd, netdev_add, device_add (TAP made beforehand)', value: median(rawA) } },
      { group: 'hotplug', name: '  the same against the raw TAP + bridge port (src/net apply) + QMP', value: median(att), unit: 'ms', baseline: { name: 'raw: applyHostActions, getfd, netdev_add, device_add', value: median(rawT) } },
      { group: 'hotplug', name: 'NIC detach (guest releases it; TAP removed)', value: median(det), unit: 'ms', baseline: { name: 'raw QMP: device_del, wait, netdev_del', value: median(rawD) }, goal: le(1.5) },
    ];
  } finally {
    spawnSync('ip', ['link', 'del', bridge]);
  }
}
