/** @module cloudinit/errors: CloudInitError and its codes (CLOUDINIT_*), for making the seed volume and warden's SSH key. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

export type CloudInitErrorCode =
  /** The seed volume could not be written (xorriso failed or is missing, the VM directory is not writable). */
  | 'CLOUDINIT_SEED_FAILED'
  /** warden's own SSH key could not be made or read. */
  | 'CLOUDINIT_KEY_FAILED';

export class CloudInitError extends WardenError {
  declare readonly code: CloudInitErrorCode;

  constructor(code: CloudInitErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}
