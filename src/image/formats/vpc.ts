/** @module image/formats/vpc: VHD (QEMU's vpc): dynamic images with the footer copy at the start, fixed ones with the footer only at the end. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import type { Details, FormatRow } from './row.js';

const COOKIE = ascii('conectix');
const FOOTER = 512;
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;
const TYPE_DIFFERENCING = 4;
const MAX_GEOMETRY = 65535 * 16 * 255;
const MAX_SECTORS = 0xff000000;
/** Creator apps whose images QEMU sizes by current_size rather than by CHS geometry. */
const SIZE_BY_FIELD = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];

/** The footer checksum: one's complement of the byte sum, the checksum field counted as zero. */
function checksumOk(b: HeaderBytes, base: number): boolean {
  const bytes = b.bytes(base, FOOTER, 'vpc footer');
  let sum = 0;
  for (let i = 0; i < FOOTER; i++) if (i < 64 || i >= 68) sum += bytes[i]!;
  return ((~sum) >>> 0) === b.u32(base + 64, false, 'vpc checksum');
}

/** QEMU's size rule: CHS geometry, unless the creator app or a maximal geometry says to use current_size. */
function virtualSectors(b: HeaderBytes, base: number): number {
  const chs = b.u16(base + 56, false) * b.u8(base + 58) * b.u8(base + 59);
  const app = b.cstring(base + 28, 4).padEnd(4, '\0');
  const bySize = SIZE_BY_FIELD.includes(app) || chs === MAX_GEOMETRY;
  return bySize ? Math.floor(b.u64(base + 48, false, 'vpc current_size') / 512) : chs;
}

/** The dynamic header's checks (block size, table size), without reading the block table itself. */
function checkDynamic(b: HeaderBytes, base: number, sectors: number): void {
  const at = b.u64(base + 16, false, 'vpc data_offset');
  if (!b.matches(at, ascii('cxsparse'))) throw badField('vpc dynamic header', at, 'no "cxsparse" magic', 'the data offset does not point at a dynamic disk header');
  const entries = b.u32(at + 28, false, 'vpc max_table_entries');
  const block = b.u32(at + 32, false, 'vpc block_size');
  if (block < 512 || (block & (block - 1)) !== 0) throw badField('vpc block_size', at + 32, block, 'must be a power of two of at least 512');
  if ((sectors * 512) / block > 0xffffffff) throw badField('vpc block_size', at + 32, block, 'too many blocks for the disk size');
  if (entries * block < sectors * 512) throw badField('vpc max_table_entries', at + 28, entries, 'the block table is too small for the disk size');
  if (entries > Math.floor(0x7fffffff / 4)) throw badField('vpc max_table_entries', at + 28, entries, 'too large');
  const bat = b.u64(at + 16, false, 'vpc table_offset');
  // QEMU compares with the file length in whole sectors (a partial last sector counts)
  if (Math.ceil((bat + entries * 4) / 512) * 512 > Math.ceil(b.size / 512) * 512) throw badField('vpc table_offset', at + 16, bat, 'the block table runs past the end of the file');
}

function vpcDetails(b: HeaderBytes, base: number): Details {
  if (!checksumOk(b, base)) throw badField('vpc footer checksum', base + 64, b.u32(base + 64, false), 'does not match the footer');
  const type = b.u32(base + 60, false, 'vpc disk type');
  if (type === TYPE_DIFFERENCING) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', 'vpc image is a differencing VHD; QEMU would read it without its parent', { context: { diskType: type } });
  }
  if (type !== TYPE_FIXED && type !== TYPE_DYNAMIC) throw badField('vpc disk type', base + 60, type, 'must be 2 (fixed) or 3 (dynamic)');
  const sectors = virtualSectors(b, base);
  if (sectors > MAX_SECTORS) throw badField('vpc size', base + 48, sectors * 512, 'larger than the 2040 GiB VHD maximum');
  // QEMU treats an image with the footer copy at the start as dynamic, whatever the type says.
  if (base === 0) checkDynamic(b, base, sectors);
  return { virtualSize: sectors * 512, formatSpecific: { subformat: base === 0 ? 'dynamic' : 'fixed' } };
}

const common = {
  format: 'vpc', le: false, version: { offset: 12, width: 4, accepted: [0x00010000] }, virtualSize: null, details: vpcDetails,
} as const;

/** Dynamic VHD: QEMU probes only this one (the cookie at offset 0). */
export const vpcRow: FormatRow = {
  ...common, variant: 'vhd (footer copy at the start)',
  magic: [{ offset: 0, bytes: COOKIE }], magicText: '"conectix" at offset 0',
};

/** Fixed VHD: the footer is the last 512 bytes; never probed (QEMU sees raw), read when the format says vpc. */
export const vpcFixedRow: FormatRow = {
  ...common, variant: 'fixed vhd (footer at the end)',
  base: (b) => Math.max(0, b.size - FOOTER),
  magic: [{ offset: 0, bytes: COOKIE }], magicText: '"conectix" in the last 512 bytes',
  probe: () => false,
};
