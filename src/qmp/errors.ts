/** @module qmp/errors: the typed errors of the QMP client, one stable code per way a conversation with QEMU can fail. */
import { WardenError } from '../errors/index.js';
import type { WardenErrorOptions } from '../errors/index.js';

export type QmpErrorCode =
  /** Connecting, reading the greeting or negotiating capabilities failed or took too long. */
  | 'QMP_CONNECT'
  /** QEMU answered a command with an error; `errorClass` and `desc` hold QEMU's words. */
  | 'QMP_COMMAND_FAILED'
  /** No reply within the command's timeout; the command may still run inside QEMU. */
  | 'QMP_TIMEOUT'
  /** The connection went away (peer hang-up, QEMU exit, or close()) before the reply. */
  | 'QMP_DISCONNECTED'
  /** The peer broke the protocol: malformed JSON, an over-long line, an unroutable error. */
  | 'QMP_PROTOCOL'
  /** File descriptors could not be passed (transport without a raw fd, sendmsg failure). */
  | 'QMP_FD_PASSING'
  /** An event subscription's buffer filled up and events were dropped. */
  | 'QMP_EVENTS_OVERFLOW';

export interface QmpErrorOptions extends WardenErrorOptions {
  command?: string;
  errorClass?: string;
  desc?: string;
}

/** Every error the QMP client raises; branch on `code`. */
export class QmpError extends WardenError {
  declare readonly code: QmpErrorCode;
  /** The QMP command this error belongs to, when there is one. */
  readonly command: string | undefined;
  /** QEMU's error class (GenericError, DeviceNotFound, CommandNotFound ...) for QMP_COMMAND_FAILED. */
  readonly errorClass: string | undefined;
  /** QEMU's human-readable description for QMP_COMMAND_FAILED; never parse it. */
  readonly desc: string | undefined;

  constructor(code: QmpErrorCode, message: string, options: QmpErrorOptions = {}) {
    const context = { ...options.context };
    if (options.command !== undefined) context['command'] = options.command;
    if (options.errorClass !== undefined) context['errorClass'] = options.errorClass;
    if (options.desc !== undefined) context['desc'] = options.desc;
    super(code, message, { ...options, context });
    this.command = options.command;
    this.errorClass = options.errorClass;
    this.desc = options.desc;
  }
}

export function isQmpError(err: unknown, code?: QmpErrorCode): err is QmpError {
  return err instanceof QmpError && (code === undefined || err.code === code);
}
