/** @module image/formats/qcow2: QEMU's qcow2 (v2, v3): backing name, header extensions (backing format, data file), feature bits, encryption. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import type { Details, FormatRow } from './row.js';
import { backingFormatName } from './names.js';
import { checkQcow2Tables } from './qcow2-tables.js';
import { checkBitmaps, checkCryptoHeader, readExtensions } from './qcow2-ext.js';

/** QEMU's own limits: backing names of at most 1023 bytes, clusters of 512 B to 2 MiB. */
const MAX_BACKING_NAME = 1023;
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;

const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_COMPRESSION = 1n << 3n;
const INCOMPAT_EXTENDED_L2 = 1n << 4n;
const INCOMPAT_KNOWN = 0x1fn; // dirty, corrupt, data file, compression type, extended L2
const AUTOCLEAR_BITMAPS = 1n << 0n;
const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

const CRYPT_NAMES: Record<number, string> = { 0: 'none', 1: 'aes', 2: 'luks' };

function clusterBits(b: HeaderBytes): number {
  const bits = b.u32(20, false, 'qcow2 cluster_bits');
  if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) throw badField('qcow2 cluster_bits', 20, bits, `must be ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`);
  return bits;
}

function backingName(b: HeaderBytes, cluster: number): { offset: number; name: string | null } {
  const offset = b.u64(8, false, 'qcow2 backing_file_offset');
  const size = b.u32(16, false, 'qcow2 backing_file_size');
  if (offset === 0) return { offset, name: null };
  if (size > MAX_BACKING_NAME) throw badField('qcow2 backing_file_size', 16, size, `longer than QEMU's ${MAX_BACKING_NAME}-byte limit`);
  if (offset > cluster - size) throw badField('qcow2 backing_file_offset', 8, offset, `the name must lie inside the first ${cluster}-byte cluster`);
  return { offset, name: b.utf8(offset, size, 'qcow2 backing file name') };
}

/** The v3 feature words and header length (v2 has none: all zero, header 72 bytes). */
function features(b: HeaderBytes, version: number, cluster: number): { incompat: bigint; autoclear: bigint; headerLength: number } {
  if (version < 3) return { incompat: 0n, autoclear: 0n, headerLength: 72 };
  const incompat = b.u64big(72, false, 'qcow2 incompatible_features');
  const autoclear = b.u64big(88, false, 'qcow2 autoclear_features');
  const headerLength = b.u32(100, false, 'qcow2 header_length');
  if (headerLength < 104 || headerLength > cluster) throw badField('qcow2 header_length', 100, headerLength, `must be 104..${cluster}`);
  const unknown = incompat & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', `qcow2 image sets incompatible feature bits 0x${unknown.toString(16)} that QEMU 7.2 does not know`, {
      context: { incompatibleFeatures: `0x${incompat.toString(16)}` },
    });
  }
  checkCompression(b, incompat, headerLength);
  return { incompat, autoclear, headerLength };
}

/** The compression type byte (when the header has it) must be zlib or zstd, and agree with its feature bit. */
function checkCompression(b: HeaderBytes, incompat: bigint, headerLength: number): void {
  const type = headerLength > 104 ? b.u8(104, 'qcow2 compression_type') : 0;
  if (type > 1) throw badField('qcow2 compression_type', 104, type, 'unknown compression type (0 zlib, 1 zstd)');
  if ((type !== 0) !== ((incompat & INCOMPAT_COMPRESSION) !== 0n)) {
    throw badField('qcow2 incompatible_features', 72, `0x${incompat.toString(16)}`, `the compression-type bit must be set exactly when the type is not zlib (type ${type})`);
  }
}

/** The facts qemu-img lists under format-specific, from the same header fields. */
function specific(b: HeaderBytes, version: number, bits: number, incompat: bigint, autoclear: bigint, headerLength: number, crypt: number, hasDataFile: boolean): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {
    compat: version >= 3 ? '1.1' : '0.10',
    clusterSize: 2 ** bits,
    refcountBits: 2 ** (version >= 3 ? b.u32(96, false) : 4),
    compressionType: headerLength > 104 && b.u8(104) === 1 ? 'zstd' : 'zlib',
  };
  if (version >= 3) { // v2 has no feature words; qemu-img lists these for v3 only
    out['lazyRefcounts'] = (b.u64big(80, false, 'qcow2 compatible_features') & 1n) !== 0n;
    out['extendedL2'] = (incompat & INCOMPAT_EXTENDED_L2) !== 0n;
  }
  if (hasDataFile) out['dataFileRaw'] = (autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
  if (crypt !== 0) out['encryption'] = CRYPT_NAMES[crypt]!;
  return out;
}

function qcow2Details(b: HeaderBytes): Details {
  const version = b.u32(4, false);
  const bits = clusterBits(b);
  const cluster = 2 ** bits;
  const backing = backingName(b, cluster);
  const crypt = b.u32(32, false, 'qcow2 crypt_method');
  if (!(crypt in CRYPT_NAMES)) throw badField('qcow2 crypt_method', 32, crypt, 'unknown encryption method');
  const { incompat, autoclear, headerLength } = features(b, version, cluster);
  const notes = checkQcow2Tables(b, version, bits, (incompat & INCOMPAT_EXTENDED_L2) !== 0n);
  const extEnd = backing.offset !== 0 ? backing.offset : cluster;
  const ext = readExtensions(b, headerLength, Math.min(extEnd, cluster));
  if ((incompat & INCOMPAT_DATA_FILE) !== 0n && ext.dataFile === null) {
    throw badField('qcow2 incompatible_features', 72, `0x${incompat.toString(16)}`, 'the external data file bit is set but no data file name is recorded');
  }
  const dataFile = (incompat & INCOMPAT_DATA_FILE) !== 0n ? ext.dataFile : null;
  if (dataFile === null && ext.dataFile !== null) notes.push(`a data file name is recorded ("${ext.dataFile}") but unused: the external-data-file bit is clear, so QEMU reads the data from the image itself`);
  if ((autoclear & AUTOCLEAR_BITMAPS) !== 0n) notes.push(...checkBitmaps(b, ext.bitmaps, cluster));
  if (crypt === 2) checkCryptoHeader(b, ext.crypto, cluster);
  const formatSpecific = specific(b, version, bits, incompat, autoclear, headerLength, crypt, dataFile !== null);
  if (crypt === 1) notes.push('legacy AES encryption: QEMU refuses to open it for writing; convert to LUKS');
  if (dataFile !== null && (autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n) notes.push('data-file-raw: the data file is a valid raw image by itself');
  return {
    backingFilename: backing.name,
    backingFormat: ext.backingFormat === null ? null : backingFormatName(ext.backingFormat),
    encrypted: crypt !== 0,
    dataFile,
    dirty: (incompat & INCOMPAT_DIRTY) !== 0n,
    corrupt: (incompat & INCOMPAT_CORRUPT) !== 0n,
    formatSpecific,
    ...(notes.length > 0 ? { notes } : {}),
  };
}

const QFI = ascii('QFI\xfb');

export const qcow2Row: FormatRow = {
  format: 'qcow2', variant: 'qcow2', le: false,
  magic: [{ offset: 0, bytes: QFI }], magicText: '"QFI\\xfb" at offset 0',
  version: { offset: 4, width: 4, accepted: [2, 3] },
  virtualSize: { offset: 24, width: 8, multiplier: 1 },
  probe: (b) => b.matches(0, QFI) && b.u32(4, false) !== 1,
  details: qcow2Details,
};

/** Names of the crypt methods, for notes and tests. */
export { CRYPT_NAMES };
