/** @module jail/errors: the jailer's typed error, one stable JAIL_* code per failure kind. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

/**
 * Codes: JAIL_INVALID_SPEC (refused before anything is created), JAIL_NOT_ROOT,
 * JAIL_BUSY (the name or uid has a live holder), JAIL_NO_FREE_UID, JAIL_LOCK_TIMEOUT,
 * JAIL_CGROUP_SETUP, JAIL_CGROUP_WRITE, JAIL_LAUNCH_FAILED, JAIL_HELPER_MISSING,
 * JAIL_TEARDOWN_FAILED, JAIL_STATE_CORRUPT, JAIL_PROGRAM_FAILED (the CLI's jailed program ended non-zero).
 */
export type JailErrorCode =
  | 'JAIL_INVALID_SPEC'
  | 'JAIL_NOT_ROOT'
  | 'JAIL_BUSY'
  | 'JAIL_NO_FREE_UID'
  | 'JAIL_LOCK_TIMEOUT'
  | 'JAIL_CGROUP_SETUP'
  | 'JAIL_CGROUP_WRITE'
  | 'JAIL_LAUNCH_FAILED'
  | 'JAIL_HELPER_MISSING'
  | 'JAIL_TEARDOWN_FAILED'
  | 'JAIL_STATE_CORRUPT'
  | 'JAIL_PROGRAM_FAILED'
  /** The configured uid range overlaps login.defs' user range or another user's subuid/subgid range. */
  | 'JAIL_UID_RANGE_CONFLICT';

export class JailError extends WardenError {
  declare readonly code: JailErrorCode;
  constructor(code: JailErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}

/** One problem found in a JailSpec: the field path (e.g. "mounts[2].source") and what is wrong. */
export interface JailSpecIssue {
  path: string;
  message: string;
}
