/** sys/sha256 against node:crypto: every length around the block and padding boundaries, UTF-8 text, bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { sha256, sha256Hex } from './sha256.js';

test('sha256 equals createHash(sha256) for strings and bytes of 0..300 bytes, ASCII and multi-byte UTF-8', () => {
  const ref = (d: string | Uint8Array) => createHash('sha256').update(d).digest();
  for (let n = 0; n <= 300; n++) {
    const ascii = 'warden-state-root\0/var/lib/warden'.repeat(10).slice(0, n);
    assert.deepEqual(sha256(ascii), ref(ascii), `ascii ${n}`);
    const bytes = randomBytes(n);
    assert.deepEqual(sha256(bytes), ref(bytes), `bytes ${n}`);
    const utf8 = 'vm-é€😀\0'.repeat(40).slice(0, n);
    assert.equal(sha256Hex(utf8), ref(utf8).toString('hex'), `utf8 ${n}`);
  }
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
