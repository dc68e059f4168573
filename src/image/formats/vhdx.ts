/** @module image/formats/vhdx: VHDX: the current header (by checksum and sequence number), the region table and the metadata items for size and parent. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import { crc32c } from './crc32c.js';
import type { Details, FormatRow } from './row.js';

const KIB = 1024;
const HEADERS = [64 * KIB, 128 * KIB];
const HEADER_SIZE = 4 * KIB;
const REGION_TABLE = 192 * KIB;
/** QEMU allows 2047 region and metadata entries; no real image has more than a handful, and reading 2047 would pass the bound. */
const MAX_ENTRIES = 64;

/** A GUID as VHDX stores it: the first three fields little-endian, the rest as written. */
function guid(text: string): Uint8Array {
  const h = text.replace(/-/g, '');
  const bytes = Uint8Array.from({ length: 16 }, (_, i) => Number.parseInt(h.slice(i * 2, i * 2 + 2), 16));
  const swap = (a: number, n: number) => bytes.subarray(a, a + n).reverse();
  swap(0, 4); swap(4, 2); swap(6, 2);
  return bytes;
}

const REGION_METADATA = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const REGION_BAT = guid('2DC27766-F623-4200-9D64-115E9BFD4A08');
const META_FILE_PARAMETERS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const META_VIRTUAL_DISK_SIZE = guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
const META_KNOWN = [
  META_FILE_PARAMETERS, META_VIRTUAL_DISK_SIZE,
  guid('BECA12AB-B2E6-4523-93EF-C309E000C746'), // page 83 data
  guid('8141BF1D-A96F-4709-BA47-F233A8FAAB5F'), // logical sector size
  guid('CDA348C7-445D-4471-9CC9-E9885251C556'), // physical sector size
  guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C'), // parent locator
];

/** The valid header with the higher sequence number (each is checked by its CRC-32C), or a refusal. */
function currentHeader(b: HeaderBytes): number {
  let best: { at: number; seq: bigint } | null = null;
  for (const at of HEADERS) {
    if (!b.matches(at, ascii('head'))) continue;
    if (crc32c(b.bytes(at, HEADER_SIZE, 'vhdx header'), 4) !== b.u32(at + 4, true)) continue;
    const seq = b.u64big(at + 8, true, 'vhdx header sequence number');
    if (best === null || seq > best.seq) best = { at, seq };
  }
  if (best === null) throw badField('vhdx headers', HEADERS[0]!, 'none valid', 'neither header has a "head" signature and a matching checksum');
  return best.at;
}

/** The offset of the region named `id` in the region table, refusing unknown required regions. */
function findRegion(b: HeaderBytes, id: Uint8Array): number {
  if (!b.matches(REGION_TABLE, ascii('regi'))) throw badField('vhdx region table', REGION_TABLE, 'no "regi" signature', 'not a region table');
  const count = b.u32(REGION_TABLE + 8, true, 'vhdx region entry count');
  if (count > MAX_ENTRIES) throw badField('vhdx region entry count', REGION_TABLE + 8, count, `more than ${MAX_ENTRIES} regions`);
  let found = -1;
  for (let i = 0; i < count; i++) {
    const e = REGION_TABLE + 16 + i * 32;
    if (b.matches(e, id)) found = b.u64(e + 16, true, 'vhdx region offset');
    else if (!b.matches(e, REGION_BAT) && (b.u32(e + 28, true) & 1) !== 0) {
      throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', 'vhdx image has an unknown region marked required', { context: { offset: e } });
    }
  }
  if (found < 0) throw badField('vhdx region table', REGION_TABLE, 'no metadata region', 'the metadata region is missing');
  return found;
}

/** Metadata items by GUID → absolute offset of their value, refusing unknown required items. */
function metadataItems(b: HeaderBytes, at: number): Map<Uint8Array, number> {
  if (!b.matches(at, ascii('metadata'))) throw badField('vhdx metadata table', at, 'no "metadata" signature', 'not a metadata table');
  const count = b.u16(at + 10, true, 'vhdx metadata entry count');
  if (count > MAX_ENTRIES) throw badField('vhdx metadata entry count', at + 10, count, `more than ${MAX_ENTRIES} items`);
  const items = new Map<Uint8Array, number>();
  for (let i = 0; i < count; i++) {
    const e = at + 32 + i * 32;
    const known = META_KNOWN.find((g) => b.matches(e, g));
    if (known !== undefined) items.set(known, at + b.u32(e + 16, true, 'vhdx metadata item offset'));
    else if ((b.u32(e + 24, true) & 4) !== 0) {
      throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', 'vhdx image has an unknown metadata item marked required', { context: { offset: e } });
    }
  }
  return items;
}

function vhdxDetails(b: HeaderBytes): Details {
  const header = currentHeader(b);
  const version = b.u16(header + 66, true, 'vhdx version');
  if (version !== 1) throw new ImageError('IMAGE_UNSUPPORTED_VERSION', `vhdx header has version ${version}; supported: 1`, { context: { format: 'vhdx', version, offset: header + 66 } });
  const logged = !b.bytes(header + 48, 16, 'vhdx log guid').every((x) => x === 0);
  const items = metadataItems(b, findRegion(b, REGION_METADATA));
  const params = items.get(META_FILE_PARAMETERS);
  const sizeAt = items.get(META_VIRTUAL_DISK_SIZE);
  if (params === undefined || sizeAt === undefined) throw badField('vhdx metadata', 0, 'incomplete', 'the file parameters or virtual disk size item is missing');
  if ((b.u32(params + 4, true, 'vhdx file parameter bits') & 2) !== 0) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', 'vhdx image is a differencing image (has a parent), which QEMU does not read', { context: { offset: params + 4 } });
  }
  const notes = logged ? ['the log is not empty: QEMU must replay it (qemu-img check -r all) before use'] : [];
  return { virtualSize: b.u64(sizeAt, true, 'vhdx virtual disk size'), dirty: logged, ...(notes.length > 0 ? { notes } : {}) };
}

export const vhdxRow: FormatRow = {
  format: 'vhdx', variant: 'vhdx', le: true,
  magic: [{ offset: 0, bytes: ascii('vhdxfile') }], magicText: '"vhdxfile" at offset 0',
  // The version lives in whichever of the two headers is current, so vhdxDetails checks it.
  version: null,
  virtualSize: null,
  details: vhdxDetails,
};
