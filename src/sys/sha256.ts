/**
 * @module sys/sha256: SHA-256 for the short names warden derives (cache keys, the state root's
 * scope, MACs and host-wide names) from @noble/hashes (audited, no dependencies) rather than
 * node:crypto: loading node:crypto initialises OpenSSL, ~3 ms of a CLI start that hashes a few
 * dozen bytes (issue 16). Same digests as createHash('sha256') (sha256.test.ts).
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/** The SHA-256 digest (32 bytes) of `data` (a string is hashed as UTF-8, as Hash.update does). */
export function sha256(data: string | Uint8Array): Buffer {
  const msg = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const d = nobleSha256(msg);
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** The digest as lowercase hex, as digest('hex'). */
export function sha256Hex(data: string | Uint8Array): string {
  return sha256(data).toString('hex');
}
