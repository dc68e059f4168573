/** @module qemu-warden: the library surface, one named re-export per module. */
export * from './errors/index.js';
