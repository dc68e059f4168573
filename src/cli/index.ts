/** @module cli: the warden command line. */
export { run, buildProgram } from './main.js';
export type { Io } from './output.js';
