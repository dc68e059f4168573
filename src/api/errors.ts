/** @module api/errors: ApiError (API_*, AUTH_*, DAEMON_*) and the one mapping of any error to an HTTP status and the `{error: {code, message, details}}` body. */
import { WardenError, httpStatusFor, type WardenErrorOptions } from '../errors/index.js';

export type ApiErrorCode =
  | 'API_BAD_JSON'
  | 'API_INVALID_REQUEST'
  | 'API_NOT_FOUND'
  | 'API_UNSUPPORTED_MEDIA_TYPE'
  | 'API_BODY_TOO_LARGE'
  | 'AUTH_FORBIDDEN'
  | 'AUTH_NO_CREDENTIALS'
  | 'DAEMON_UNAVAILABLE'
  | 'DAEMON_BAD_RESPONSE';

export class ApiError extends WardenError {
  declare readonly code: ApiErrorCode;

  constructor(code: ApiErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

/** Fastify's own errors (body parsing, limits, routing) in our codes. */
function fromFramework(err: { code?: string; statusCode?: number; message?: string }): ApiError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new ApiError('API_BODY_TOO_LARGE', 'the request body is larger than the limit', { suggestions: ['a spec is a few KiB; the limit is 20 MiB'] });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new ApiError('API_UNSUPPORTED_MEDIA_TYPE', `unsupported content type: ${err.message ?? ''}`, { suggestions: ['send application/json (or application/yaml for a spec)'] });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return new ApiError('API_BAD_JSON', 'the request body is empty or its length is wrong');
    default: return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500
      ? new ApiError('API_INVALID_REQUEST', err.message ?? 'bad request') : null;
  }
}

/** The HTTP status and body for any error; the status comes from the one code table (src/errors). */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  const e = err instanceof WardenError ? err : fromFramework(err as { code?: string }) ?? new WardenError('INTERNAL', String((err as Error)?.message ?? err));
  const j = e.toJSON();
  const details: Record<string, unknown> = {};
  for (const k of ['context', 'suggestions', 'cause'] as const) if (j[k] !== undefined) details[k] = j[k];
  return { status: httpStatusFor(e), body: { error: { code: e.code, message: e.message, details } } };
}
