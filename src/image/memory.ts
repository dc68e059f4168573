/** @module image/memory: an in-memory ByteSource that counts what is read, for hostile-header tests, the fuzzer and callers holding bytes already. */
import type { ByteSource } from './reader.js';

export class MemorySource implements ByteSource {
  /** Total bytes handed out, and the largest single read, to check the bound from outside the reader. */
  bytesServed = 0;
  reads = 0;

  constructor(private readonly data: Uint8Array, readonly size: number = data.length) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    const end = Math.min(offset + length, this.data.length);
    const out = offset >= end ? new Uint8Array(0) : this.data.slice(offset, end);
    this.bytesServed += out.length;
    return out;
  }
}
