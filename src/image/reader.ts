/** @module image/reader: the imperative shell around the pure prober: bounded positioned reads until the parse completes. */
import { HeaderBytes, NeedBytes, READ_ALIGN, type Chunk } from './bytes.js';
import { ImageError } from './errors.js';
import { parseImage, parseWithRow, type ParsedInfo } from './parse.js';
import type { FormatRow } from './formats/row.js';
import type { ImageFormat, ImageInfo } from './types.js';

/** The hard bound on bytes read from one image, every read counted (VMDK descriptor and VPC footer included). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** Anything that can serve positioned reads of a file of known size. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** The window read for a miss: aligned to READ_ALIGN, clamped to the file. */
function windowFor(need: NeedBytes, size: number): { offset: number; length: number } {
  const start = need.offset - (need.offset % READ_ALIGN);
  const end = Math.min(size, Math.ceil((need.offset + need.length) / READ_ALIGN) * READ_ALIGN);
  return { offset: start, length: end - start };
}

/** A parse that needs more rounds than this is refused like one that reads too much. */
const MAX_ROUNDS = 64;

/** Shrinks a window so it starts where an already-read chunk covering its start ends. */
function gapFor(chunks: readonly Chunk[], w: { offset: number; length: number }): { offset: number; length: number } {
  const end = w.offset + w.length;
  const cover = chunks.find((c) => w.offset >= c.offset && w.offset < c.offset + c.data.length);
  if (cover === undefined) return w;
  const start = cover.offset + cover.data.length;
  return { offset: start, length: Math.max(0, end - start) };
}

/** Adds a chunk, merging it with the chunk it continues so a field across the seam reads from one piece. */
function addChunk(chunks: readonly Chunk[], next: Chunk): Chunk[] {
  const prev = chunks.find((c) => c.offset + c.data.length === next.offset);
  if (prev === undefined) return [...chunks, next];
  const data = new Uint8Array(prev.data.length + next.data.length);
  data.set(prev.data, 0);
  data.set(next.data, prev.data.length);
  return [...chunks.filter((c) => c !== prev), { offset: prev.offset, data }];
}

/** One positioned read; an I/O failure becomes IMAGE_READ_FAILED, so only ImageError leaves the reader. */
async function readOrThrow(src: ByteSource, w: { offset: number; length: number }): Promise<Uint8Array> {
  try {
    return await src.read(w.offset, w.length);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ImageError('IMAGE_READ_FAILED', `reading bytes ${w.offset}..${w.offset + w.length} failed (${code})`, { context: { offset: w.offset, length: w.length }, cause: err });
  }
}

/**
 * Probes one image: runs the pure parse, reads what it asks for, and reruns, never
 * reading more than MAX_HEADER_BYTES in total. Throws only ImageError.
 */
export function readImageInfo(src: ByteSource, format: ImageFormat | null, nameHint: string | null = null): Promise<ImageInfo> {
  return readBounded(src, (b) => parseImage(b, format, nameHint));
}

/** Like readImageInfo, for one given table row (a VMDK extent is read with a row of its own). */
export function readWithRow(src: ByteSource, row: FormatRow): Promise<ImageInfo> {
  return readBounded(src, (b) => parseWithRow(b, row));
}

/** The shell loop: run the pure parse, read what it asks for within the bound, run it again. */
async function readBounded(src: ByteSource, parse: (b: HeaderBytes) => ParsedInfo): Promise<ImageInfo> {
  let chunks: Chunk[] = [];
  let bytesRead = 0;
  for (let round = 0; ; round++) {
    try {
      const info = parse(new HeaderBytes(src.size, chunks));
      return { ...info, bytesRead };
    } catch (err) {
      if (!(err instanceof NeedBytes)) throw err;
      const w = gapFor(chunks, windowFor(err, src.size));
      if (bytesRead + w.length > MAX_HEADER_BYTES || round >= MAX_ROUNDS) {
        throw new ImageError('IMAGE_READ_BOUND_EXCEEDED', `reading ${err.length} bytes at offset ${err.offset} would pass the ${MAX_HEADER_BYTES}-byte bound on header reads (${bytesRead} read so far)`, {
          context: { offset: err.offset, length: err.length, bytesRead, bound: MAX_HEADER_BYTES },
        });
      }
      const data = await readOrThrow(src, w);
      bytesRead += w.length;
      if (data.length < w.length) {
        throw new ImageError('IMAGE_TRUNCATED', `the file ended at ${w.offset + data.length} while reading bytes ${w.offset}..${w.offset + w.length} (it shrank while being read?)`, {
          context: { offset: w.offset, length: w.length, got: data.length },
        });
      }
      chunks = addChunk(chunks, { offset: w.offset, data });
    }
  }
}
