/** @module shim/errors: ShimError and its stable codes (SHIM_*), and how each maps onto a ttrpc (gRPC) status code. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

/**
 * SHIM_BAD_BUNDLE (config.json or the VM spec in the bundle is unusable), SHIM_NOT_FOUND
 * (no such task), SHIM_EXISTS (task id taken), SHIM_INVALID_STATE (the task cannot do
 * that now), SHIM_UNSUPPORTED (exec, checkpoint ...), SHIM_PROTO_MISSING (containerd's
 * .proto files are not installed), SHIM_PROTOCOL (a malformed ttrpc frame), SHIM_USAGE
 * (bad command line), SHIM_IO (the task's stdio or the shim's socket).
 */
export type ShimErrorCode =
  | 'SHIM_BAD_BUNDLE'
  | 'SHIM_NOT_FOUND'
  | 'SHIM_EXISTS'
  | 'SHIM_INVALID_STATE'
  | 'SHIM_UNSUPPORTED'
  | 'SHIM_PROTO_MISSING'
  | 'SHIM_PROTOCOL'
  | 'SHIM_USAGE'
  | 'SHIM_IO';

export class ShimError extends WardenError {
  declare readonly code: ShimErrorCode;
  constructor(code: ShimErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}

/** gRPC status codes containerd's errdefs map back to its own errors (NotFound, AlreadyExists ...). */
export const GRPC = { OK: 0, UNKNOWN: 2, INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;

/** The gRPC code containerd should see for an error thrown by a task method. */
export function grpcCodeFor(err: unknown): number {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'SHIM_NOT_FOUND': case 'VM_NOT_FOUND': return GRPC.NOT_FOUND;
    case 'SHIM_EXISTS': case 'VM_EXISTS': return GRPC.ALREADY_EXISTS;
    case 'SHIM_INVALID_STATE': case 'VM_INVALID_STATE': return GRPC.FAILED_PRECONDITION;
    case 'SHIM_UNSUPPORTED': return GRPC.UNIMPLEMENTED;
    case 'SHIM_BAD_BUNDLE': case 'SHIM_USAGE': return GRPC.INVALID_ARGUMENT;
    default: return typeof code === 'string' && code.startsWith('SPEC_') ? GRPC.INVALID_ARGUMENT : GRPC.UNKNOWN;
  }
}
