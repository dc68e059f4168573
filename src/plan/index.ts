/** @module plan: the pure planner: spec + facts → QEMU argv, fds, JailSpec, host actions and resource manifest. */
export { buildPlan } from './plan.js';
export type { Plan, HelperPlan, PlannedFd, ManifestEntry, ManifestKind, Facts, OpenFlag, ArgTrace } from './types.js';
export { PlanError } from './errors.js';
export type { PlanIssue } from './errors.js';
export { stableMac, hostIfname } from './net.js';
export { SANDBOX } from './base.js';
export { renderPlan, planToJson } from './render.js';
export { planDiskAttach, planDiskDetach, bootDiskSteps } from './hotplug.js';
export type { DiskAttachPlan, HotplugStep, HotplugFd, LiveAllocations, QmpCall } from './hotplug.js';
export { throttleGroupId, SCSI_CONTROLLER } from './disks.js';
export { PASST_BINARY, USER_NET, helperJailName } from './helpers.js';
export { VIRTIOFSD_BINARY, UNSHARE_BINARY } from './helpers-virtiofs.js';
export { planSnapshotCreate, planSnapshotMerge } from './snapshot.js';
export type { LiveLayer, OverlayTarget, SnapshotCreatePlan, MergeInput, MergePlan } from './snapshot.js';
export { hostWideName } from './scope.js';
export { planNicAttach } from './hotplug-nic.js';
export type { NicAttachPlan, NicLiveAllocations } from './hotplug-nic.js';
export { SWTPM_BINARY, tpmStateDir, tpmVersion } from './helpers-tpm.js';
