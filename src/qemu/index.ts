/** @module qemu: a QEMU binary's capabilities (version, machines, devices, QAPI schema), probed once and cached per binary, and QAPI checks of planned objects. */
export type { QemuCaps, QemuMachine, QapiEntry, QemuView, ProgramView, ViewFile } from './types.js';
export { gatherView, gatherProgramView, parseLdd, parseDataDirs } from './view.js';
export { probeQemu, probeArgv, PROPERTY_DEVICES } from './probe.js';
export { loadQemuCaps, loadProgramView, cacheFile } from './cache.js';
export type { CapsSource, BinaryStat } from './cache.js';
export { indexSchema, checkCommandArgs, plannerSchema, PLANNED_COMMANDS } from './qapi.js';
export type { QapiIndex, PlannedCommand } from './qapi.js';
export { QemuProbeError } from './errors.js';
