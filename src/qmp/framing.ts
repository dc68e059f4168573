/** @module qmp/framing: splits a byte stream into lines with a hard bound, so a peer cannot make us buffer without limit. */
import { QmpError } from './errors.js';

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * Incremental line splitter for QMP's one-JSON-object-per-line framing (QEMU ends lines
 * with CRLF; a bare LF is accepted). At most `maxLineBytes` of one line are ever held:
 * the partial line is checked on every chunk, not only when its newline arrives.
 */
export class LineDecoder {
  private parts: Buffer[] = [];
  private partBytes = 0;

  constructor(readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {}

  /** Feeds a chunk; returns the complete lines it finished (without CR/LF), empty ones dropped. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const line = this.parts.length === 0 ? this.whole(chunk, start, nl) : this.take(chunk.subarray(start, nl));
      if (line.length > 0) lines.push(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const tail = chunk.subarray(start);
      // +1: the line's CR may be the last byte of this chunk.
      this.check(this.partBytes + tail.length - 1);
      // Copy: the tail may pin a large socket buffer otherwise.
      this.parts.push(Buffer.from(tail));
      this.partBytes += tail.length;
    }
    return lines;
  }

  /** Bytes of an unfinished line held right now. */
  get pendingBytes(): number {
    return this.partBytes;
  }

  /** A line that lies whole in this chunk (the usual reply): decoded in place, no slice or copy. */
  private whole(chunk: Buffer, start: number, nl: number): string {
    const end = nl > start && chunk[nl - 1] === 13 ? nl - 1 : nl;
    this.check(end - start);
    return chunk.toString('utf8', start, end).trim();
  }

  private take(piece: Buffer): string {
    const held = this.partBytes + piece.length;
    const last = piece.length > 0 ? piece[piece.length - 1] : this.parts.at(-1)?.at(-1);
    this.check(last === 13 ? held - 1 : held);
    let whole = piece;
    if (this.parts.length > 0) {
      this.parts.push(piece);
      whole = Buffer.concat(this.parts, held);
      this.parts = [];
      this.partBytes = 0;
    }
    const end = last === 13 ? whole.length - 1 : whole.length;
    return whole.toString('utf8', 0, end).trim();
  }

  private check(bytes: number): void {
    if (bytes <= this.maxLineBytes) return;
    this.parts = [];
    this.partBytes = 0;
    throw new QmpError('QMP_PROTOCOL', `reading a QMP message failed: a line exceeds the bound of ${this.maxLineBytes} bytes`, {
      context: { maxLineBytes: this.maxLineBytes, seenBytes: bytes },
      suggestions: ['raise maxLineBytes in QmpClient.connect() if QEMU legitimately sends larger replies'],
    });
  }
}
