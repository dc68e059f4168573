/** @module qmp/types: the typed view of the generated schema: command names, argument and return types, events. */
import type { QmpCommands, QmpEvents } from './generated/qapi.js';
import type { QmpTimestamp } from './protocol.js';

export type QmpCommandName = keyof QmpCommands & string;
export type QmpEventName = keyof QmpEvents & string;
export type QmpArgs<K extends QmpCommandName> = QmpCommands[K]['args'];
export type QmpReturn<K extends QmpCommandName> = QmpCommands[K]['ret'];
export type QmpEventData<K extends QmpEventName> = QmpEvents[K];

/** A typed event; with a union of names, `event` narrows `data` in a switch. */
export type QmpEvent<K extends QmpEventName = QmpEventName> = {
  [N in K]: { event: N; data: QmpEvents[N]; timestamp: QmpTimestamp };
}[K];

export interface ExecuteOptions {
  /** Reject with QMP_TIMEOUT after this many ms (default: the client's commandTimeoutMs; 0 = none). */
  timeoutMs?: number;
  /**
   * Fds sent with this command by SCM_RIGHTS (getfd / add-fd consume the first one). Keep
   * them open until the call settles; a call that settles unsent (timeout) never sends them.
   */
  fds?: readonly number[];
  /** Send as exec-oob (only for allow-oob commands, and only when oob was negotiated). */
  oob?: boolean;
}

/** ExecuteOptions where `oob` is allowed only for the commands QEMU marks allow-oob. */
export type ExecuteOptionsFor<K extends QmpCommandName> = QmpCommands[K]['oob'] extends true
  ? ExecuteOptions
  : Omit<ExecuteOptions, 'oob'> & { oob?: false };

/** Arguments are optional exactly when every argument member is optional. */
export type ExecuteRest<K extends QmpCommandName> = {} extends QmpArgs<K>
  ? [args?: QmpArgs<K>, options?: ExecuteOptionsFor<K>]
  : [args: QmpArgs<K>, options?: ExecuteOptionsFor<K>];
