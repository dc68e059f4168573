/** @module vm/hotplug-view: the hot-plugged devices of a VM's current run as inspect shows them (where each came from, since when). */
import type { VmRecord } from './record.js';

export interface HotplugDeviceView {
  /** 'disk' (an entry without a kind is a disk), or what the entry says (NICs). */
  kind: string;
  name: string;
  deviceId: string;
  state: 'attaching' | 'attached' | 'removing';
  /** Where it came from: a live-only hot-plug (gone at the next start), one persisted in the stored spec, or a boot-time disk being detached. */
  origin: 'live-only' | 'persisted' | 'boot';
  attachedAt: string | null;
  removingSince: string | null;
  /** What the entry records of the device (a disk: image, format, readOnly, limits ...). */
  device: Record<string, unknown>;
}

/** The current run's entries (older runs' devices went with their QEMU). */
export function hotplugDevices(rec: VmRecord): HotplugDeviceView[] {
  if (rec.run === undefined) return [];
  return (rec.hotplug ?? []).filter((e) => e.run === rec.run?.startedAt).map((e) => ({
    kind: (e as { kind?: string }).kind ?? 'disk', name: e.name, deviceId: e.deviceId, state: e.state,
    origin: e.boot === true ? 'boot' : e.liveOnly ? 'live-only' : 'persisted', attachedAt: e.attachedAt ?? null, removingSince: e.removing?.since ?? null,
    device: e.disk,
  }));
}

/** One line per device for `warden inspect`. */
export function formatHotplugDevices(list: readonly HotplugDeviceView[]): string[] {
  return list.map((d) => {
    const what = typeof d.device['image'] === 'string' ? ` ${String(d.device['image'])}` : '';
    const when = d.attachedAt === null ? '' : ` at ${d.attachedAt}`;
    const state = d.state === 'removing' ? `, REMOVING since ${d.removingSince ?? '?'} (the guest has not released it; detach again to finish)` : d.state === 'attaching' ? ', attach interrupted (the next disk command undoes it)' : '';
    return `  hot-plugged ${d.kind} ${d.name} (${d.deviceId})${what}: ${d.origin === 'live-only' ? 'live only' : d.origin === 'boot' ? 'started with the VM, being detached' : 'persisted in the spec'}${when}${state}`;
  });
}
