/** @module net: host network plumbing (TAP on Linux bridges and Open vSwitch, macvtap, vhost-net), undo log and cleanup. */
export type { HostAction, MacvtapMode } from './actions.js';
export { NetError, type NetErrorCode } from './errors.js';
export { DEFAULT_IF_PREFIX, MAX_IFNAME, hostIfName, vmIfPrefix, isVmIfName, stableMac, macProblem, hostSideMac, ovsExternalIds } from './names.js';
export { actionIssues, validateActions, type ActionIssue } from './validate.js';
export { stepsFor, undoText, ownerAlias, aliasOwner, MAX_ALIAS, DEFAULT_OVS_DB, type Step, type UndoEntry, type CommandOptions, type OvsTarget } from './steps.js';
export { RtnlLinks, LinkError, type LinkPort, type LinkInfo } from './links.js';
export { OvsdbClient, OvsdbError, type OvsdbPort } from './ovsdb.js';
export { formatSteps } from './format.js';
export { applyHostActions, closeHostFds, type NetDeps, type AppliedNetwork } from './apply.js';
export { undoHostActions, emptyUndoLog, serializeUndoLog, parseUndoLog, toUndoLog, type UndoLog, type UndoDeps } from './undo-log.js';
export { cleanupVmNetwork, type CleanupDeps, type CleanupResult } from './cleanup.js';
export { hostNetFacts, type HostNetFacts } from './facts.js';
export { tapNetdev, userNetdev, hostfwdRule, type HostForward, type UserNetOptions } from './qemu-args.js';
