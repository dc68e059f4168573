/** @module vm/errors: VmError and its stable codes (VM_*), for the lifecycle, the state store and the supervisor. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

export type VmErrorCode =
  | 'VM_NOT_FOUND'
  | 'VM_EXISTS'
  | 'VM_INVALID_STATE'
  | 'VM_BUSY'
  | 'VM_DISK_IN_USE'
  | 'VM_NAME_IN_USE'
  | 'VM_STATE_CORRUPT'
  | 'VM_START_FAILED'
  | 'VM_QEMU_DIED'
  | 'VM_TIMEOUT'
  | 'VM_QMP'
  | 'VM_BAD_NAME'
  | 'VM_TEARDOWN_FAILED'
  | 'VM_IO'
  | 'VM_NO_DISPLAY'
  | 'VM_DEVICE_NOT_FOUND'
  | 'VM_HOTPLUG_FAILED'
  | 'VM_DISK_SHRINK'
  | 'VM_DEVICE_REMOVING'
  | 'VM_SAVE_FAILED'
  | 'VM_RESTORE_FAILED'
  | 'VM_SNAPSHOT_NOT_FOUND'
  | 'VM_SNAPSHOT_EXISTS'
  | 'VM_SNAPSHOT_FAILED'
  | 'VM_MIGRATE_FAILED'
  | 'VM_MIGRATE_CANCELLED'
  | 'VM_MIGRATE_REFUSED';

export class VmError extends WardenError {
  declare readonly code: VmErrorCode;

  constructor(code: VmErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}

export function isVmError(err: unknown, code?: VmErrorCode): err is VmError {
  return err instanceof VmError && (code === undefined || err.code === code);
}
