/** @module qmp: the typed QMP client (commands, events, timeouts, fd passing) and the types generated from QEMU's schema. */
export { QmpClient } from './client.js';
export type { ConnectOptions, QmpWarning } from './client.js';
export { QmpError, isQmpError } from './errors.js';
export type { QmpErrorCode } from './errors.js';
export { EventSubscription } from './events.js';
export type { NextOptions, RawQmpEvent } from './events.js';
export type { QmpTarget } from './transport.js';
export type { QmpGreeting, QmpVersion, QmpTimestamp } from './protocol.js';
export type {
  QmpCommandName, QmpEventName, QmpArgs, QmpReturn, QmpEventData, QmpEvent, ExecuteOptions, ExecuteOptionsFor, ExecuteRest,
} from './types.js';
export type * from './generated/qapi.js';
