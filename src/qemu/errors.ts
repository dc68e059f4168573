/** @module qemu/errors: typed errors of the capability prober. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

export type QemuErrorCode = 'HOST_QEMU_PROBE' | 'HOST_QEMU_MISSING';

/** A QEMU binary could not be asked for its capabilities (a host problem: exit 6). */
export class QemuProbeError extends WardenError {
  constructor(code: QemuErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}
