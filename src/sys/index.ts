/** @module sys: ports for side effects and their Node implementations; the only module that touches Node I/O directly. */
export type { ProcessRunner, RunOptions, RunResult, Fs, Clock, HostFiles } from './ports.js';
export { NodeHostFiles } from './node-host-files.js';
export { NodeProcessRunner } from './node-process.js';
export { NodeFs } from './node-fs.js';
export { nodeClock } from './node-clock.js';
export { loadNative } from './native.js';
export type { NativeAddon, WatchHandle } from './native.js';
export { sha256, sha256Hex } from './sha256.js';
