/** @module errors: the base error class every module's typed errors extend, and the code → exit status table. */

/** Structured facts about where an error happened (path, offset, vm, argv ...). */
export type ErrorContext = Record<string, unknown>;

export interface WardenErrorOptions {
  context?: ErrorContext;
  cause?: unknown;
  suggestions?: string[];
  /** The process exit status this error asks for, overriding the code table (e.g. a jailed program's own status). */
  exitCode?: number;
}

/**
 * Base of all qemu-warden errors. `code` is a stable string callers branch on
 * (`IMAGE_BAD_MAGIC`, `JAIL_CGROUP_WRITE` ...); the message says what was being done,
 * to what, with the values, and never repeats the cause's text.
 */
export class WardenError extends Error {
  readonly code: string;
  readonly context: ErrorContext;
  readonly suggestions: string[];
  readonly exitCode: number | undefined;

  constructor(code: string, message: string, options: WardenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
    this.suggestions = options.suggestions ?? [];
    this.exitCode = options.exitCode;
  }

  /** A JSON-safe view: {code, message, context, suggestions, cause}. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (Object.keys(this.context).length > 0) out['context'] = this.context;
    if (this.suggestions.length > 0) out['suggestions'] = this.suggestions;
    if (this.cause !== undefined) out['cause'] = describeCause(this.cause);
    return out;
  }
}

function describeCause(cause: unknown): unknown {
  if (cause instanceof WardenError) return cause.toJSON();
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code === undefined ? { message: cause.message } : { code, message: cause.message };
  }
  return String(cause);
}

/** The whole cause chain as lines, outermost first, for the CLI and logs. */
export function formatErrorChain(err: unknown): string[] {
  const lines: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      lines.push(typeof code === 'string' ? `${cur.message} [${code}]` : cur.message);
      cur = cur.cause;
    } else {
      lines.push(String(cur));
      cur = undefined;
    }
  }
  return lines;
}

/**
 * The one table from error-code prefix to CLI exit status (and, later, HTTP status).
 * Exit 2 is a usage or spec problem, 3 a refused image, 4 wrong VM state, 5 not found,
 * 6 host preflight, 7 QEMU died, 8 not finished yet (a device the guest still holds), 1 anything else.
 */
const EXIT_BY_PREFIX: ReadonlyArray<readonly [string, number, number]> = [
  ['SPEC_', 2, 400],
  ['USAGE_', 2, 400],
  ['PLAN_', 2, 422],
  ['IMAGE_', 3, 422],
  ['VM_INVALID_STATE', 4, 409],
  ['VM_NOT_FOUND', 5, 404],
  ['VM_EXISTS', 4, 409],
  ['VM_DISK_IN_USE', 4, 409],
  ['VM_NAME_IN_USE', 4, 409],
  ['VM_BUSY', 4, 409],
  ['VM_BAD_NAME', 2, 400],
  ['SHIM_BAD_BUNDLE', 2, 400],
  ['SHIM_USAGE', 2, 400],
  ['SHIM_NOT_FOUND', 5, 404],
  ['SHIM_INVALID_STATE', 4, 409],
  ['VM_NO_DISPLAY', 4, 409],
  ['VM_DEVICE_NOT_FOUND', 5, 404],
  ['VM_HOTPLUG_FAILED', 4, 409],
  ['VM_DISK_SHRINK', 2, 400],
  ['VM_DEVICE_REMOVING', 8, 202],
  ['VM_SNAPSHOT_NOT_FOUND', 5, 404],
  ['VM_SNAPSHOT_EXISTS', 4, 409],
  ['VM_SNAPSHOT_FAILED', 4, 409],
  ['VM_MIGRATE_REFUSED', 2, 400],
  // the HTTPS listener's credentials (src/api/http-*)
  ['AUTH_REQUIRED', 2, 401],
  ['AUTH_TOKEN_INVALID', 2, 401],
  ['AUTH_CODE_INVALID', 2, 401],
  ['AUTH_TOKEN_NOT_FOUND', 5, 404],
  ['AUTH_CSRF', 2, 403],
  ['AUTH_ORIGIN', 2, 403],
  ['JAIL_INVALID_SPEC', 2, 400],
  ['JAIL_BUSY', 4, 409],
  ['QMP_COMMAND_FAILED', 1, 422],
  ['HOST_', 6, 503],
  ['NET_', 6, 503],
  ['JAIL_', 6, 500],
  ['VM_QEMU_DIED', 7, 500],
  ['QMP_', 7, 502],
  // the daemon's API (src/api): auth, request shape, routing
  ['AUTH_', 1, 403],
  ['API_NOT_FOUND', 5, 404],
  ['API_UNSUPPORTED_MEDIA_TYPE', 2, 415],
  ['API_BODY_TOO_LARGE', 2, 413],
  ['API_', 2, 400],
  ['DAEMON_', 1, 503],
];

export function exitCodeFor(err: unknown): number {
  if (err instanceof WardenError && err.exitCode !== undefined) return err.exitCode;
  const code = err instanceof WardenError ? err.code : undefined;
  if (code === undefined) return 1;
  for (const [prefix, exit] of EXIT_BY_PREFIX) if (code.startsWith(prefix)) return exit;
  return 1;
}

export function httpStatusFor(err: unknown): number {
  const code = err instanceof WardenError ? err.code : undefined;
  if (code === undefined) return 500;
  for (const [prefix, , status] of EXIT_BY_PREFIX) if (code.startsWith(prefix)) return status;
  return 500;
}
