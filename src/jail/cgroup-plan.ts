/** @module jail/cgroup-plan: pure cgroup logic: find the hierarchies in a mount table, plan the mkdirs and limit writes for v1 or v2. */
import type { JailCgroup } from './spec.js';

/** The controllers a jail uses; devices exists only on v1 (v2 would need a BPF program). */
export const JAIL_CONTROLLERS = ['cpu', 'memory', 'pids', 'devices'] as const;
export type JailController = (typeof JAIL_CONTROLLERS)[number];

export type CgroupLayout =
  | { version: 1; mounts: Partial<Record<JailController, string>> }
  | { version: 2; mount: string; controllers: string[] };

/** A device node as the devices controller names it. */
export interface DeviceNumber { path: string; kind: 'c' | 'b'; major: number; minor: number }

export type CgroupStep =
  | { op: 'mkdir'; path: string; parents: boolean }
  | { op: 'write'; path: string; value: string; ifExists?: boolean };

export interface CgroupPlan {
  version: 1 | 2;
  /** The jail's own cgroup directories (one per v1 hierarchy, one on v2): joined, killed, removed. */
  leaves: string[];
  steps: CgroupStep[];
}

/**
 * v1 hierarchies of our controllers, or the v2 mount when it carries memory and pids;
 * `v2Controllers` is its cgroup.controllers. `prefer` forces one version where it is mounted.
 */
export function parseCgroupLayout(mountsText: string, v2Controllers: (mount: string) => string[], prefer: 'auto' | 1 | 2 = 'auto'): CgroupLayout | undefined {
  const v1: Partial<Record<JailController, string>> = {};
  let v2: string | undefined;
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, fsType, options] = line.split(' ');
    if (mountPoint === undefined || options === undefined) continue;
    if (fsType === 'cgroup2' && v2 === undefined) v2 = mountPoint;
    if (fsType !== 'cgroup') continue;
    const opts = options.split(',');
    for (const c of JAIL_CONTROLLERS) if (opts.includes(c) && v1[c] === undefined) v1[c] = mountPoint;
  }
  const hasV1 = Object.keys(v1).length > 0;
  if (v2 !== undefined && prefer !== 1) {
    const controllers = v2Controllers(v2);
    if (prefer === 2 || (controllers.includes('memory') && controllers.includes('pids')) || !hasV1) return { version: 2, mount: v2, controllers };
  }
  return hasV1 && prefer !== 2 ? { version: 1, mounts: v1 } : undefined;
}

/** Limits the spec asks for whose controller this layout lacks: they must fail the launch, not vanish. */
export function missingControllers(layout: CgroupLayout, cg: JailCgroup): string[] {
  const wanted = [cg.cpu !== undefined && 'cpu', cg.memoryBytes !== undefined && 'memory', cg.pids !== undefined && 'pids']
    .filter((c): c is 'cpu' | 'memory' | 'pids' => c !== false);
  return layout.version === 1 ? wanted.filter((c) => layout.mounts[c] === undefined) : wanted.filter((c) => !layout.controllers.includes(c));
}

function v1Limits(c: JailController, dir: string, cg: JailCgroup, devices: DeviceNumber[]): CgroupStep[] {
  const w = (file: string, value: string | number, ifExists = false): CgroupStep =>
    ({ op: 'write', path: `${dir}/${file}`, value: String(value), ...(ifExists ? { ifExists } : {}) });
  switch (c) {
    case 'cpu': return cg.cpu === undefined ? [] : [w('cpu.cfs_period_us', cg.cpu.periodUs), w('cpu.cfs_quota_us', cg.cpu.quotaUs)];
    // memsw after the plain limit (it must never be below it); with it, swap cannot extend the limit.
    case 'memory': return cg.memoryBytes === undefined ? [] : [w('memory.limit_in_bytes', cg.memoryBytes), w('memory.memsw.limit_in_bytes', cg.memoryBytes, true)];
    case 'pids': return cg.pids === undefined ? [] : [w('pids.max', cg.pids)];
    case 'devices': return [w('devices.deny', 'a'), ...devices.map((d) => w('devices.allow', `${d.kind} ${d.major}:${d.minor} rwm`))];
  }
}

function planV1(layout: Extract<CgroupLayout, { version: 1 }>, parent: string, cg: JailCgroup, devices: DeviceNumber[]): CgroupPlan {
  const leaves: string[] = [];
  const steps: CgroupStep[] = [];
  for (const c of JAIL_CONTROLLERS) {
    const mount = layout.mounts[c];
    if (mount === undefined) continue;
    const leaf = `${mount}/${parent}/${cg.name}`;
    // Controllers sharing one hierarchy (cpu,cpuacct) share one leaf.
    if (!leaves.includes(leaf)) {
      leaves.push(leaf);
      steps.push({ op: 'mkdir', path: `${mount}/${parent}`, parents: true }, { op: 'mkdir', path: leaf, parents: false });
    }
    steps.push(...v1Limits(c, leaf, cg, devices));
  }
  return { version: 1, leaves, steps };
}

function planV2(layout: Extract<CgroupLayout, { version: 2 }>, parent: string, cg: JailCgroup): CgroupPlan {
  const enable = (['cpu', 'memory', 'pids'] as const).filter((c) => layout.controllers.includes(c));
  const subtree = enable.map((c) => `+${c}`).join(' ');
  const leaf = `${layout.mount}/${parent}/${cg.name}`;
  const w = (file: string, value: string | number, ifExists = false): CgroupStep =>
    ({ op: 'write', path: `${leaf}/${file}`, value: String(value), ...(ifExists ? { ifExists } : {}) });
  const steps: CgroupStep[] = [{ op: 'mkdir', path: `${layout.mount}/${parent}`, parents: true }];
  // Controllers must be enabled from the root down before the leaf can use them.
  if (subtree !== '') {
    steps.push({ op: 'write', path: `${layout.mount}/cgroup.subtree_control`, value: subtree },
      { op: 'write', path: `${layout.mount}/${parent}/cgroup.subtree_control`, value: subtree });
  }
  steps.push({ op: 'mkdir', path: leaf, parents: false });
  if (cg.cpu !== undefined) steps.push(w('cpu.max', `${cg.cpu.quotaUs} ${cg.cpu.periodUs}`));
  if (cg.memoryBytes !== undefined) steps.push(w('memory.max', cg.memoryBytes), w('memory.swap.max', 0, true));
  if (cg.pids !== undefined) steps.push(w('pids.max', cg.pids));
  return { version: 2, leaves: [leaf], steps };
}

/** The ordered steps that create the jail's cgroup(s) with its limits; `devices` are the only nodes allowed (v1). */
export function planCgroup(layout: CgroupLayout, parent: string, cg: JailCgroup, devices: DeviceNumber[]): CgroupPlan {
  return layout.version === 1 ? planV1(layout, parent, cg, devices) : planV2(layout, parent, cg);
}

/** The leaves a jail named `name` has under `parent`, for teardown after a crash (no limits needed). */
export function cgroupLeaves(layout: CgroupLayout, parent: string, name: string): string[] {
  return planCgroup(layout, parent, { name }, []).leaves;
}
