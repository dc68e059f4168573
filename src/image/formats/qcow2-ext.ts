/** @module image/formats/qcow2-ext: qcow2 header extensions: the list walk (8-byte padded, bounded) and the checks QEMU makes on the bitmaps and LUKS-header extensions. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const EXT_BITMAPS = 0x23852875;
const EXT_CRYPTO_HEADER = 0x0537be77;
/** At most this many extensions are looked at; a header that has more is refused. */
const MAX_EXTENSIONS = 64;
/** QEMU 7.2's bitmap limits (qcow2.h). */
const MAX_BITMAPS = 65535;
const MAX_BITMAP_DIRECTORY = 1024 * MAX_BITMAPS;

export interface Extensions {
  backingFormat: string | null;
  dataFile: string | null;
  /** Offsets of the bitmaps and LUKS-header extension data, where present. */
  bitmaps: number | null;
  crypto: number | null;
}

/** The data of one extension, with the length checks QEMU makes for the fixed-size ones. */
function take(b: HeaderBytes, out: Extensions, type: number, at: number, len: number): void {
  if (type === EXT_BACKING_FORMAT) {
    if (len >= 16) throw badField('qcow2 backing format extension length', at - 4, len, 'QEMU allows at most 15 bytes');
    out.backingFormat = b.cstring(at, len, 'qcow2 backing format');
  } else if (type === EXT_DATA_FILE) {
    out.dataFile = b.utf8(at, len, 'qcow2 data file name');
  } else if (type === EXT_BITMAPS) {
    if (len !== 24) throw badField('qcow2 bitmaps extension length', at - 4, len, 'must be 24');
    out.bitmaps = at;
  } else if (type === EXT_CRYPTO_HEADER) {
    if (len !== 16) throw badField('qcow2 encryption header extension length', at - 4, len, 'must be 16');
    out.crypto = at;
  }
}

/** Walks the extension list from `start` up to `end` (the backing name or the cluster end), 8-byte padded. */
export function readExtensions(b: HeaderBytes, start: number, end: number): Extensions {
  const out: Extensions = { backingFormat: null, dataFile: null, bitmaps: null, crypto: null };
  let at = start;
  for (let n = 0; n < MAX_EXTENSIONS; n++) {
    if (at >= end) return out;
    if (at + 8 > end) throw badField('qcow2 header extension', at, 'cut short', `no room for an extension header before offset ${end}`);
    const type = b.u32(at, false, 'qcow2 extension type');
    const len = b.u32(at + 4, false, 'qcow2 extension length');
    // QEMU checks the length before it looks at the type, the end marker included
    if (len > end - at - 8) throw badField('qcow2 header extension length', at + 4, len, `extension 0x${type.toString(16)} runs past offset ${end}`);
    if (type === EXT_END) return out;
    take(b, out, type, at + 8, len);
    at += 8 + Math.ceil(len / 8) * 8;
  }
  throw badField('qcow2 header extensions', start, `more than ${MAX_EXTENSIONS}`, 'too many header extensions');
}

/**
 * The bitmaps extension when the bitmaps autoclear bit is set: QEMU refuses a missing
 * reserved-zero, zero or too many bitmaps, an unaligned or oversized directory. The
 * directory itself (which QEMU reads at open) is not read; a note gives its size.
 */
export function checkBitmaps(b: HeaderBytes, at: number | null, cluster: number): string[] {
  if (at === null) return [];
  const count = b.u32(at, false, 'qcow2 nb_bitmaps');
  if (b.u32(at + 4, false, 'qcow2 bitmaps reserved') !== 0) throw badField('qcow2 bitmaps extension', at + 4, 'reserved field set', 'must be zero');
  if (count === 0 || count > MAX_BITMAPS) throw badField('qcow2 nb_bitmaps', at, count, `must be 1..${MAX_BITMAPS}`);
  const size = b.u64big(at + 8, false, 'qcow2 bitmap_directory_size');
  if (size > BigInt(MAX_BITMAP_DIRECTORY)) throw badField('qcow2 bitmap_directory_size', at + 8, size, `larger than QEMU's ${MAX_BITMAP_DIRECTORY}`);
  if (b.u64big(at + 16, false, 'qcow2 bitmap_directory_offset') % BigInt(cluster) !== 0n) {
    throw badField('qcow2 bitmap_directory_offset', at + 16, b.u64big(at + 16, false), 'not cluster-aligned');
  }
  return [`${count} persistent bitmap(s): QEMU reads their ${size}-byte directory when it opens the image`];
}

/** A LUKS-encrypted qcow2 must point at its LUKS header, cluster-aligned and inside the file, starting with the LUKS magic. */
export function checkCryptoHeader(b: HeaderBytes, at: number | null, cluster: number): void {
  if (at === null) throw badField('qcow2 encryption header extension', 0, 'missing', 'a LUKS-encrypted image must record where its LUKS header is');
  const offset = b.u64(at, false, 'qcow2 encryption header offset');
  if (offset % cluster !== 0) throw badField('qcow2 encryption header offset', at, offset, 'not cluster-aligned');
  if (!b.matches(offset, ascii('LUKS\xba\xbe')) || b.u16(offset + 6, false, 'qcow2 LUKS version') !== 1) {
    throw badField('qcow2 encryption header', offset, 'not LUKS1', 'the LUKS header is not where the extension says');
  }
}
