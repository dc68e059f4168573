/** @module image/formats/parallels: Parallels disk images (version 2): sector count, the in-use (dirty) mark and QEMU's catalog checks. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const MAGIC1 = ascii('WithoutFreeSpace');
const MAGIC2 = ascii('WithouFreSpacExt');
const INUSE_MAGIC = 0x746f6e59;
/** 0xAB234CEF23DCEA87, little-endian. */
const EXT_MAGIC = Uint8Array.of(0x87, 0xea, 0xdc, 0x23, 0xef, 0x4c, 0x23, 0xab);

function parallelsDetails(b: HeaderBytes): Details {
  const tracks = b.u32(28, true, 'parallels tracks');
  if (tracks === 0) throw badField('parallels tracks', 28, tracks, 'zero sectors per track');
  if (tracks > Math.floor(0x7fffffff / 513)) throw badField('parallels tracks', 28, tracks, 'cluster too big');
  const bat = b.u32(32, true, 'parallels bat_entries');
  if (bat > Math.floor(0x7fffffff / 4)) throw badField('parallels bat_entries', 32, bat, 'catalog too large');
  let sectors = b.u64(36, true, 'parallels nb_sectors');
  if (b.matches(0, MAGIC1)) sectors = sectors % 2 ** 32; // old-style images keep only 32 bits
  const ext = b.u64(56, true, 'parallels ext_off');
  if (ext !== 0 && !b.matches(ext * 512, EXT_MAGIC)) throw badField('parallels ext_off', 56, ext, 'no format extension (magic 0xab234cef23dcea87) there');
  const dirty = b.u32(44, true, 'parallels inuse') === INUSE_MAGIC;
  const notes = dirty ? ['not closed cleanly: QEMU opens it read-only only, until qemu-img check -r all repairs it'] : [];
  return { virtualSize: sectors * 512, dirty, ...(dirty ? { notes } : {}) };
}

export const parallelsRow: FormatRow = {
  format: 'parallels', variant: 'parallels', le: true,
  magic: [{ offset: 0, bytes: MAGIC1 }, { offset: 0, bytes: MAGIC2 }], magicText: '"WithoutFreeSpace" or "WithouFreSpacExt" at offset 0',
  version: { offset: 16, width: 4, accepted: [2] },
  virtualSize: null,
  details: parallelsDetails,
};
