/** @module qmp/testing: helpers for tests and benchmarks: a real QEMU on pre-opened monitor sockets, and a scripted fake peer for fault injection. */
export { startQemu, QEMU_BINARY } from './qemu.js';
export type { QemuOptions, TestQemu } from './qemu.js';
export { FakeQmpPeer, FakeConnection } from './fake-peer.js';
export type { FakeCommand, FakeScript, FakePeerOptions } from './fake-peer.js';
