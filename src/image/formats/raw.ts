/** @module image/formats/raw: raw images (and ISO 9660, which QEMU also treats as raw): the virtual size is the file size. */
import { ascii, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const ISO_MAGIC = ascii('CD001');
/** The primary volume descriptor sits in sector 16 of 2048 bytes; its identifier follows the type byte. */
const ISO_MAGIC_OFFSET = 16 * 2048 + 1;

/** QEMU counts a raw file in 512-byte sectors, rounding a partial last sector up. */
function rawSize(b: HeaderBytes): number {
  return Math.ceil(b.size / 512) * 512;
}

/** Raw with a format given reads nothing: the size comes from fstat. */
function rawDetails(b: HeaderBytes): Details {
  return { virtualSize: rawSize(b) };
}

/** Probed raw reads only the ISO 9660 identifier. */
function probedRawDetails(b: HeaderBytes): Details {
  if (b.matches(ISO_MAGIC_OFFSET, ISO_MAGIC)) {
    return { virtualSize: rawSize(b), notes: ['ISO 9660 image: QEMU treats it as raw; give it as a cdrom (read-only), not as a disk'] };
  }
  return { virtualSize: rawSize(b) };
}

export const rawRow: FormatRow = {
  format: 'raw', variant: 'raw', le: true, magic: [], magicText: 'none',
  version: null, virtualSize: null,
  details: rawDetails,
};

/** The row used when probing finds no magic: raw, with the ISO hint where it applies. */
export const probedRawRow: FormatRow = { ...rawRow, details: probedRawDetails };
