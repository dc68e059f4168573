/** @module plan: the pure planner: spec + facts → QEMU argv, fds, JailSpec, host actions and resource manifest. */
export { buildPlan } from './plan.js';
export type { Plan, HelperPlan, PlannedFd, ManifestEntry, ManifestKind, Facts, OpenFlag, ArgTrace } from './types.js';
export { PlanError } from './errors.js';
export type { PlanIssue } from './errors.js';
export { stableMac, hostIfname } from './net.js';
export { SANDBOX } from './base.js';
export { renderPlan, planToJson } from './render.js';
export { planDiskAttach, planDiskDetach } from './hotplug.js';
export type { DiskAttachPlan, HotplugStep, HotplugFd, LiveAllocations, QmpCall } from './hotplug.js';
export { PASST_BINARY, USER_NET, helperJailName } from './helpers.js';
export { hostWideName } from './scope.js';
export { layerNode } from './disks.js';
