/** @module jail: the generic jailer; knows nothing of what it runs. */
export type { JailSpec, JailMount, JailFd, JailCgroup, JailRlimits, JailNetwork } from './spec.js';
