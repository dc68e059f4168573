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
const UTF8 = new TextDecoder('utf-8', { fatal: false });

/**
 * The image as far as it has been read: `size` is the file size, `chunks` the windows read.
 * Every accessor checks the range against the file size first (IMAGE_TRUNCATED) and then
 * against what was read (NeedBytes). Nothing here allocates by a header value except
 * `bytes`, whose length callers bound before asking.
 */
export class HeaderBytes {
  constructor(readonly size: number, readonly chunks: readonly Chunk[] = []) {}

  /** The chunk holding [offset, offset+length), after checking the range lies inside the file. */
  private at(offset: number, length: number, what: string): { data: Uint8Array; start: number } {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ImageError('IMAGE_TRUNCATED', `reading ${what}: bytes ${offset}..${offset + length} lie past the end of the ${this.size}-byte file`, {
        context: { offset, length, fileSize: this.size, field: what },
      });
    }
    if (length === 0) return { data: new Uint8Array(0), start: 0 };
    for (const c of this.chunks) {
      if (offset >= c.offset && offset + length <= c.offset + c.data.length) return { data: c.data, start: offset - c.offset };
    }
    throw new NeedBytes(offset, length);
  }

  has(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size;
  }

  u8(offset: number, what = 'a byte'): number {
    const { data, start } = this.at(offset, 1, what);
    return data[start]!;
  }

  u16(offset: number, le: boolean, what = 'a 16-bit field'): number {
    const { data, start } = this.at(offset, 2, what);
    return le ? data[start]! | (data[start + 1]! << 8) : (data[start]! << 8) | data[start + 1]!;
  }

  u32(offset: number, le: boolean, what = 'a 32-bit field'): number {
    const { data, start } = this.at(offset, 4, what);
    return new DataView(data.buffer, data.byteOffset + start, 4).getUint32(0, le);
  }

  /** A 64-bit field as a number; values past 2^53 are refused (no image field needs them). */
  u64(offset: number, le: boolean, what = 'a 64-bit field'): number {
    const { data, start } = this.at(offset, 8, what);
    const v = new DataView(data.buffer, data.byteOffset + start, 8).getBigUint64(0, le);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ImageError('IMAGE_BAD_FIELD', `reading ${what} at offset ${offset}: value ${v} is larger than any image can be`, {
        context: { offset, field: what, value: v.toString() },
      });
    }
    return Number(v);
  }

  /** The 64-bit field as a bigint (flag words whose high bits matter). */
  u64big(offset: number, le: boolean, what = 'a 64-bit field'): bigint {
    const { data, start } = this.at(offset, 8, what);
    return new DataView(data.buffer, data.byteOffset + start, 8).getBigUint64(0, le);
  }

  /** A view of `length` bytes; callers bound `length` (at most the read budget) before asking. */
  bytes(offset: number, length: number, what = 'a byte range'): Uint8Array {
    const { data, start } = this.at(offset, length, what);
    return data.subarray(start, start + length);
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
