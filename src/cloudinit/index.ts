/** @module cloudinit: the NoCloud seed from the spec's cloudInit section (pure content, a small writer) and warden's own SSH key. */
export { buildSeed, needsWardenKey, SUDO_ALL } from './seed.js';
export type { Seed, SeedFile, SeedInput } from './seed.js';
export { writeSeed, SEED_LABEL } from './write.js';
export { ensureWardenKey, readWardenKey, wardenKeyPath } from './keys.js';
export type { WardenKey } from './keys.js';
export { CloudInitError } from './errors.js';
export type { CloudInitErrorCode } from './errors.js';
