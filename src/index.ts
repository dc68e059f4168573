/** @module qemu-warden: the library surface, one namespace per module so names never collide. */
export * from './errors/index.js';
export * as spec from './spec/index.js';
export * as image from './image/index.js';
export * as qemu from './qemu/index.js';
export * as plan from './plan/index.js';
export * as jail from './jail/index.js';
export * as net from './net/index.js';
export * as qmp from './qmp/index.js';
export * as vm from './vm/index.js';
export * as api from './api/index.js';
