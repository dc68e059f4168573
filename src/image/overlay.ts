/**
 * @module image/overlay: the bytes of a new, empty qcow2 (v3) image, over a backing layer or standalone, as a
 * pure function, so the manager writes the file itself into an fd it created (O_EXCL) instead
 * of letting a tool open a name. The layout is qemu-img's for a fresh image: header (cluster 0,
 * with the backing format extension and the backing name), refcount table (cluster 1), one
 * refcount block (cluster 2), the L1 table (cluster 3 on); every data cluster unallocated.
 */
import type { ImageFormat } from './types.js';

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
const HEADER_LENGTH = 104;
/** Header extension: backing file format name. */
const EXT_BACKING_FORMAT = 0xe2792aca;

export interface OverlaySpec {
  /** The guest-visible size in bytes (the backing layer's virtual size). */
  virtualSize: number;
  /** The backing name written into the header (relative names resolve against the overlay's directory). */
  backing: string;
  backingFormat: ImageFormat;
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** The whole file: a fresh qcow2 overlay (its size is a few clusters; nothing else is ever read from it). */
export function qcow2Overlay(o: OverlaySpec): Buffer {
  const name = Buffer.from(o.backing, 'utf8');
  if (name.length === 0 || name.length > 1023) throw new RangeError(`backing name of ${name.length} bytes (1..1023)`);
  return qcow2File(o.virtualSize, { name, fmt: Buffer.from(o.backingFormat, 'ascii') });
}

/** A fresh, empty qcow2 (v3) image with no backing layer: every cluster unallocated, reads as zeros. */
export function qcow2Empty(virtualSize: number): Buffer {
  return qcow2File(virtualSize, null);
}

function qcow2File(virtualSize: number, backing: { name: Buffer; fmt: Buffer } | null): Buffer {
  const o = { virtualSize };
  if (!Number.isSafeInteger(o.virtualSize) || o.virtualSize <= 0 || o.virtualSize % 512 !== 0) throw new RangeError(`virtual size ${o.virtualSize} is not a positive multiple of 512`);
  const l2Span = CLUSTER * (CLUSTER / 8);
  const l1Size = Math.ceil(o.virtualSize / l2Span);
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / CLUSTER));
  const clusters = 3 + l1Clusters;
  const buf = Buffer.alloc(clusters * CLUSTER);
  const fmt = backing?.fmt ?? Buffer.alloc(0);
  const name = backing?.name ?? Buffer.alloc(0);
  const extLen = (backing === null ? 0 : 8 + pad8(fmt.length)) + 8; // the format extension, then the end marker
  const backingOffset = HEADER_LENGTH + extLen;
  if (backingOffset + name.length > CLUSTER) throw new RangeError('header does not fit one cluster');
  buf.write('QFI\xfb', 0, 'latin1');
  buf.writeUInt32BE(3, 4);
  buf.writeBigUInt64BE(BigInt(backing === null ? 0 : backingOffset), 8);
  buf.writeUInt32BE(name.length, 16);
  buf.writeUInt32BE(CLUSTER_BITS, 20);
  buf.writeBigUInt64BE(BigInt(o.virtualSize), 24);
  buf.writeUInt32BE(0, 32); // no encryption
  buf.writeUInt32BE(l1Size, 36);
  buf.writeBigUInt64BE(BigInt(3 * CLUSTER), 40); // L1 table
  buf.writeBigUInt64BE(BigInt(CLUSTER), 48); // refcount table
  buf.writeUInt32BE(1, 56); // refcount table clusters
  // 60 nb_snapshots, 64 snapshots_offset, 72/80/88 feature bits: all zero
  buf.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  buf.writeUInt32BE(HEADER_LENGTH, 100);
  if (backing !== null) {
    buf.writeUInt32BE(EXT_BACKING_FORMAT, HEADER_LENGTH);
    buf.writeUInt32BE(fmt.length, HEADER_LENGTH + 4);
    fmt.copy(buf, HEADER_LENGTH + 8);
    name.copy(buf, backingOffset);
  }
  // end-of-extensions marker: 8 zero bytes (already zero)
  buf.writeBigUInt64BE(BigInt(2 * CLUSTER), CLUSTER); // refcount table -> block
  for (let c = 0; c < clusters; c++) buf.writeUInt16BE(1, 2 * CLUSTER + 2 * c); // every metadata cluster used once
  return buf;
}
