/** @module image/formats/bochs: Bochs growing redolog images (v1 and v2): disk size and the catalog checks QEMU makes. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const V1 = 0x00010000;
const MAX_CATALOG = 0x100000;
const MAX_EXTENT = 0x800000;

function bochsDetails(b: HeaderBytes): Details {
  if (!b.matches(32, ascii('Redolog\0')) || !b.matches(48, ascii('Growing\0'))) {
    throw badField('bochs type/subtype', 32, `${b.cstring(32, 16)}/${b.cstring(48, 16)}`, 'QEMU reads only Redolog/Growing images');
  }
  const version = b.u32(64, true);
  const disk = b.u64(version === V1 ? 84 : 88, true, 'bochs disk size');
  const sectors = Math.floor(disk / 512);
  const catalog = b.u32(72, true, 'bochs catalog');
  if (catalog > MAX_CATALOG) throw badField('bochs catalog', 72, catalog, `more than QEMU's ${MAX_CATALOG} entries`);
  const extent = b.u32(80, true, 'bochs extent');
  if (extent < 512 || (extent & (extent - 1)) !== 0 || extent > MAX_EXTENT) throw badField('bochs extent', 80, extent, `must be a power of two from 512 to ${MAX_EXTENT}`);
  if (catalog < Math.ceil(sectors / (extent / 512))) throw badField('bochs catalog', 72, catalog, 'too small for the disk size');
  return { virtualSize: sectors * 512 };
}

export const bochsRow: FormatRow = {
  format: 'bochs', variant: 'bochs redolog', le: true,
  magic: [{ offset: 0, bytes: ascii('Bochs Virtual HD Image\0') }], magicText: '"Bochs Virtual HD Image" at offset 0',
  version: { offset: 64, width: 4, accepted: [0x00020000, V1] },
  virtualSize: null,
  details: bochsDetails,
};
