/**
 * @module shim/framing: ttrpc's wire framing, pure: a 10-byte header (u32 BE payload length
 * of at most 4 MiB, u32 BE stream id, u8 type 1=request 2=response, u8 flags) before each
 * protobuf message (ttrpc@1.1 channel.go).
 */
import { ShimError } from './errors.js';

export const HEADER_LENGTH = 10;
export const MAX_MESSAGE = 4 << 20;
export const MSG_REQUEST = 1;
export const MSG_RESPONSE = 2;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export function encodeFrame(f: Omit<Frame, 'flags'> & { flags?: number }): Buffer {
  if (f.payload.length > MAX_MESSAGE) {
    throw new ShimError('SHIM_PROTOCOL', `ttrpc message of ${f.payload.length} bytes exceeds the ${MAX_MESSAGE}-byte limit`, { context: { length: f.payload.length } });
  }
  const h = Buffer.alloc(HEADER_LENGTH);
  h.writeUInt32BE(f.payload.length, 0);
  h.writeUInt32BE(f.streamId, 4);
  h.writeUInt8(f.type, 8);
  h.writeUInt8(f.flags ?? 0, 9);
  return Buffer.concat([h, f.payload]);
}

/** Accumulates bytes from a stream and yields whole frames; throws SHIM_PROTOCOL on an oversized one. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    while (this.buf.length >= HEADER_LENGTH) {
      const length = this.buf.readUInt32BE(0);
      if (length > MAX_MESSAGE) {
        throw new ShimError('SHIM_PROTOCOL', `ttrpc frame announces ${length} bytes, more than the ${MAX_MESSAGE}-byte limit`, { context: { length } });
      }
      if (this.buf.length < HEADER_LENGTH + length) break;
      out.push({
        streamId: this.buf.readUInt32BE(4), type: this.buf.readUInt8(8), flags: this.buf.readUInt8(9),
        payload: Buffer.from(this.buf.subarray(HEADER_LENGTH, HEADER_LENGTH + length)),
      });
      this.buf = this.buf.subarray(HEADER_LENGTH + length);
    }
    return out;
  }
}
