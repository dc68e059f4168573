/** @module image/formats/row: the shape of one format table row: where the magic, version and size live, and the format's own extras parser. */
import type { ImageFormat, ImageInfo } from '../types.js';
import type { HeaderBytes } from '../bytes.js';

/** A fixed byte string at an offset from the row's base. */
export interface Magic {
  offset: number;
  bytes: Uint8Array;
}

/** An unsigned integer field at an offset from the row's base. */
export interface Field {
  offset: number;
  width: 1 | 2 | 4 | 8;
}

/** What a row's extras parser adds; anything left out takes the defaults (null / false). */
export type Details = Partial<Omit<ImageInfo, 'format' | 'bytesRead'>>;

/** One way of recognising and reading one format (a format may have several, e.g. VMDK sparse and descriptor). */
export interface FormatRow {
  format: ImageFormat;
  /** Short name of the variant, for messages ("sparse extent", "text descriptor"). */
  variant: string;
  /** Byte order of every numeric field. */
  le: boolean;
  /** Offset in the file of the structure the other offsets are relative to (VPC fixed footer, DMG trailer: the end). */
  base?: (b: HeaderBytes) => number;
  /** Any one of these at base identifies the row; empty means "no magic" (raw, descriptor text). */
  magic: readonly Magic[];
  /** A readable description of the magic for a refusal. */
  magicText: string;
  version: (Field & { accepted: readonly number[] }) | null;
  virtualSize: (Field & { multiplier: number }) | null;
  /** When probing (no format given): does this row claim the file? Default: a magic matches. */
  probe?: (b: HeaderBytes, nameHint: string | null) => boolean;
  /** For rows without magic: does the file look like this variant at all? */
  identify?: (b: HeaderBytes) => boolean;
  /** The format's own extras: backing name and format, data file, flags; may override virtualSize. */
  details?: (b: HeaderBytes, base: number) => Details;
}

/** Reads an unsigned field of the row's byte order at base + field.offset. */
export function readField(b: HeaderBytes, row: FormatRow, base: number, f: Field, what: string): number {
  const at = base + f.offset;
  switch (f.width) {
    case 1: return b.u8(at, what);
    case 2: return b.u16(at, row.le, what);
    case 4: return b.u32(at, row.le, what);
    case 8: return b.u64(at, row.le, what);
  }
}
