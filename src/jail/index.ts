/** @module jail: the generic jailer; knows nothing of what it runs. */
export type { JailSpec, JailIdmap, JailMount, JailFd, JailCgroup, JailRlimits, JailNetwork } from './spec.js';
export { JailError, type JailErrorCode, type JailSpecIssue } from './errors.js';
export { defaultJailerConfig, DEFAULT_ALLOWED_DEVICES, type JailerConfig } from './config.js';
export { checkJailSpec } from './validate.js';
export { validateJailSpec, checkJailHost, nodeHostProbe, type HostProbe } from './validate-host.js';
export { buildJailArgv, type JailArgvFacts } from './argv.js';
export { planCgroup, parseCgroupLayout, missingControllers, type CgroupLayout, type CgroupPlan } from './cgroup-plan.js';
export { launchJail, type LaunchOptions, type LaunchStep } from './launch.js';
export { teardownJail, attachJail, listJails, type TeardownResult, type TeardownOptions } from './teardown.js';
export { readJailExit, parseJailStatus, type JailExit } from './status.js';
export type { JailHandle } from './handle.js';
export { LeaseStore, type JailRecord, type HostIdsProbe } from './lease-store.js';
export { hostIdProbe, rangeConflicts, readRangeConflicts, rangeCollisions, parseLoginDefs, parseSubIds, RESERVED_FOR, type IdInUse, type IdRange, type RangeConflict } from './uid-check.js';
export { probeJailHost, type JailHostReport } from './preflight.js';
export { reachableHelper } from './helper-path.js';
export { IDMAP_DIR } from './idmap.js';
