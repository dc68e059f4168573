/** @module spec: the warden/v1 VM spec: schema, parsing with located errors, path resolution and the editor JSON Schema. */
export { SpecSchema, DiskSchema, NetworkSchema } from './schema.js';
export type { Spec, SpecInput, Disk, Network, Forward, Share } from './schema.js';
export type { CloudInit, CloudInitUser } from './cloudinit.js';
export { parseSpec, issueAt } from './parse.js';
export { resolveSpecPaths } from './paths.js';
export { specJsonSchema } from './json-schema.js';
export { SpecError, SpecReadError, formatIssue } from './errors.js';
export type { SpecIssue } from './errors.js';
export { parseSize, formatSize, parsePercent } from './units.js';
export { DiskLimitsSchema, LIMIT_FIELDS, conflictingLimits, throttleLimits } from './disk-limits.js';
export type { DiskLimits, LimitField } from './disk-limits.js';
export { nearest, editDistance } from './suggest.js';
