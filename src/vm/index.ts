/** @module vm: the VM lifecycle: state store, state machine, supervisor steps, reconcile, console, demo. */
export { VmManager, type ManagerOptions } from './manager.js';
export type { StopOptions } from './stop.js';
export { openManager, type OpenOptions } from './open.js';
export { StateStore, defaultStateRoot, type VmPaths } from './store.js';
export { VmError, isVmError, type VmErrorCode } from './errors.js';
export { PHASES, allowedActions, assertAllowed, isAllowed, type Phase, type Action, type ExitReason } from './machine.js';
export type { VmRecord, RunInfo, ExitInfo } from './record.js';
export { detectKvm, type KvmVerdict } from './accel.js';
export { attachConsole, followLog, DETACH_KEY_NAME } from './console.js';
export { outsideView, hostPathsOpen, type OutsideView } from './outside.js';
export { summarize, formatTable, inspectRecord, formatInspection, type VmSummary, type Inspection } from './view.js';
export { terminalProgress } from './progress.js';
export { findTestGuest, ensureTestGuest, GUEST_READY_LINE, repoRoot, type TestGuest } from './guest.js';
export { realBackends, jailerConfig } from './backends.js';
export { runDemo } from './demo.js';
