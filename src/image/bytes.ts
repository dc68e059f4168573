/** @module image/bytes: a bounds-checked view over the parts of an image read so far; a miss asks the shell for more instead of reading. */
import { ImageError } from './errors.js';

/** Granularity of the windows the shell reads when the parser asks for bytes it does not have. */
export const READ_ALIGN = 512;

/** Thrown (and caught by the reader) when a parser touches bytes not read yet: the shell reads them and reruns the pure parse. */
export class NeedBytes {
  constructor(readonly offset: number, readonly length: number) {}
}

export interface Chunk {
  offset: number;
  data: Uint8Array;
}

const LATIN1 = new TextDecoder('latin1');
const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;
/** The largest high word of a 64-bit value that is still a safe integer (2^53 - 1 >> 32). */
const SAFE_HIGH = 0x1fffff;
const UTF8 = new TextDecoder('utf-8', { fatal: false });

/**
 * The image as far as it has been read: `size` is the file size, `chunks` the windows read.
 * Every accessor checks the range against the file size first (IMAGE_TRUNCATED) and then
 * against what was read (NeedBytes). Nothing here allocates by a header value except
 * `bytes`, whose length callers bound before asking.
 */
export class HeaderBytes {
  constructor(readonly size: number, readonly chunks: readonly Chunk[] = []) {}

  /** Where the last `at` found its bytes in the chunk it returned (a field, not an object per read: the parse reads many). */
  private start = 0;

  /** The chunk holding [offset, offset+length), after checking the range lies inside the file; the bytes start at `this.start`. */
  private at(offset: number, length: number, what: string): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ImageError('IMAGE_TRUNCATED', `reading ${what}: bytes ${offset}..${offset + length} lie past the end of the ${this.size}-byte file`, {
        context: { offset, length, fileSize: this.size, field: what },
      });
    }
    if (length === 0) { this.start = 0; return EMPTY; }
    for (const c of this.chunks) {
      if (offset >= c.offset && offset + length <= c.offset + c.data.length) { this.start = offset - c.offset; return c.data; }
    }
    throw new NeedBytes(offset, length);
  }

  has(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size;
  }

  u8(offset: number, what = 'a byte'): number {
    const data = this.at(offset, 1, what);
    return data[this.start]!;
  }

  u16(offset: number, le: boolean, what = 'a 16-bit field'): number {
    const d = this.at(offset, 2, what);
    const i = this.start;
    return le ? d[i]! | (d[i + 1]! << 8) : (d[i]! << 8) | d[i + 1]!;
  }

  u32(offset: number, le: boolean, what = 'a 32-bit field'): number {
    return u32At(this.at(offset, 4, what), this.start, le);
  }

  /** A 64-bit field as a number; values past 2^53 are refused (no image field needs them). */
  u64(offset: number, le: boolean, what = 'a 64-bit field'): number {
    const d = this.at(offset, 8, what);
    const i = this.start;
    const hi = u32At(d, le ? i + 4 : i, le);
    const lo = u32At(d, le ? i : i + 4, le);
    if (hi > SAFE_HIGH) {
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      throw new ImageError('IMAGE_BAD_FIELD', `reading ${what} at offset ${offset}: value ${v} is larger than any image can be`, {
        context: { offset, field: what, value: v.toString() },
      });
    }
    return hi * TWO_32 + lo;
  }

  /** The 64-bit field as a bigint (flag words whose high bits matter). */
  u64big(offset: number, le: boolean, what = 'a 64-bit field'): bigint {
    const d = this.at(offset, 8, what);
    const i = this.start;
    return (BigInt(u32At(d, le ? i + 4 : i, le)) << 32n) | BigInt(u32At(d, le ? i : i + 4, le));
  }

  /** A view of `length` bytes; callers bound `length` (at most the read budget) before asking. */
  bytes(offset: number, length: number, what = 'a byte range'): Uint8Array {
    const data = this.at(offset, length, what);
    return data.subarray(this.start, this.start + length);
  }

  /** True when the bytes at `offset` equal `expect` (false, not an error, when the file is too short). */
  matches(offset: number, expect: Uint8Array): boolean {
    if (!this.has(offset, expect.length)) return false;
    const got = this.bytes(offset, expect.length);
    for (let i = 0; i < expect.length; i++) if (got[i] !== expect[i]) return false;
    return true;
  }

  /** Bytes as Latin-1 text, cut at the first NUL (fixed-size C string fields). */
  cstring(offset: number, length: number, what = 'a text field'): string {
    const b = this.bytes(offset, length, what);
    const nul = b.indexOf(0);
    return LATIN1.decode(nul < 0 ? b : b.subarray(0, nul));
  }

  /** Bytes as UTF-8 text (file names recorded in headers), cut at the first NUL. */
  utf8(offset: number, length: number, what = 'a name'): string {
    const b = this.bytes(offset, length, what);
    const nul = b.indexOf(0);
    return UTF8.decode(nul < 0 ? b : b.subarray(0, nul));
  }
}

/** The unsigned 32-bit value at d[i..i+4) (bounds already checked). */
function u32At(d: Uint8Array, i: number, le: boolean): number {
  return le
    ? (d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24)) >>> 0
    : ((d[i]! << 24) | (d[i + 1]! << 16) | (d[i + 2]! << 8) | d[i + 3]!) >>> 0;
}

/** ASCII text as bytes, for magic strings in the format table. */
export function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** A bad-field refusal with the field, its offset and its value in the context. */
export function badField(what: string, offset: number, value: unknown, why: string): ImageError {
  return new ImageError('IMAGE_BAD_FIELD', `${what} at offset ${offset} is ${String(value)}: ${why}`, {
    context: { field: what, offset, value: typeof value === 'bigint' ? value.toString() : value },
  });
}
