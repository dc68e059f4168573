/** @module image/errors: the typed error every refusal of the prober and the chain walker raises, with its stable codes. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

/** Stable codes; callers branch on these (docs/errors.md lists what each means). */
export const IMAGE_CODES = [
  'IMAGE_NOT_FOUND',
  'IMAGE_OPEN_FAILED',
  'IMAGE_READ_FAILED',
  'IMAGE_NOT_A_FILE',
  'IMAGE_BAD_MAGIC',
  'IMAGE_UNSUPPORTED_VERSION',
  'IMAGE_UNSUPPORTED_FEATURE',
  'IMAGE_TRUNCATED',
  'IMAGE_BAD_FIELD',
  'IMAGE_READ_BOUND_EXCEEDED',
  'IMAGE_CHAIN_LOOP',
  'IMAGE_CHAIN_TOO_DEEP',
  'IMAGE_BACKING_FORMAT_UNKNOWN',
  'IMAGE_BACKING_FORMAT_UNSUPPORTED',
  'IMAGE_BACKING_JSON',
  'IMAGE_BACKING_PROTOCOL',
  'IMAGE_OUTSIDE_ALLOWED_DIRS',
  'IMAGE_INVALID_OPTION',
  'IMAGE_DEVICE_REFUSED',
  'IMAGE_CHANGED',
  'IMAGE_OWNER_DENIED',
  'IMAGE_POLICY_INVALID',
] as const;

/**
 * Refusals of the image policy proper (where a chain may lead, what may be opened): these
 * make `validate` exit 3 like `start`, not 2 like a spec mistake.
 */
export const IMAGE_POLICY_CODES: ReadonlySet<string> = new Set([
  'IMAGE_OUTSIDE_ALLOWED_DIRS', 'IMAGE_DEVICE_REFUSED', 'IMAGE_CHANGED', 'IMAGE_OWNER_DENIED', 'IMAGE_POLICY_INVALID',
]);

export type ImageErrorCode = (typeof IMAGE_CODES)[number];

/**
 * An image or chain the prober refuses. `context.layer` (when known) is the absolute path
 * of the layer concerned; `toJSON` lifts it to the top level so `--json` prints
 * `{error: {code, message, layer}}`.
 */
export class ImageError extends WardenError {
  declare readonly code: ImageErrorCode;

  constructor(code: ImageErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }

  /** The layer path this error is about, or null when the error arose before a path was known. */
  get layer(): string | null {
    const layer = this.context['layer'];
    return typeof layer === 'string' ? layer : null;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), layer: this.layer };
  }
}

/** Returns a copy of `err` with `layer` (and extra context) added, keeping code, message, suggestions and cause. */
export function atLayer(err: ImageError, layer: string, extra: Record<string, unknown> = {}): ImageError {
  const message = err.layer === null ? `${err.message} (in ${layer})` : err.message;
  return new ImageError(err.code, message, {
    context: { ...err.context, ...extra, layer },
    suggestions: err.suggestions,
    ...(err.cause === undefined ? {} : { cause: err.cause }),
  });
}
