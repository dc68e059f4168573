/** @module image/parse: the pure prober: (bytes read so far, file size, format?) → header facts, driven by the format table. */
import { type HeaderBytes } from './bytes.js';
import { ImageError } from './errors.js';
import { probedRawRow } from './formats/raw.js';
import { readField, type FormatRow } from './formats/row.js';
import { FORMAT_TABLE } from './table.js';
import type { ImageFormat, ImageInfo } from './types.js';

export type ParsedInfo = Omit<ImageInfo, 'bytesRead'>;

function baseOf(row: FormatRow, b: HeaderBytes): number {
  return row.base === undefined ? 0 : row.base(b);
}

function magicMatches(row: FormatRow, b: HeaderBytes): boolean {
  if (row.magic.length === 0) return row.identify === undefined ? true : row.identify(b);
  const base = baseOf(row, b);
  return row.magic.some((m) => b.matches(base + m.offset, m.bytes));
}

/** The row that claims the file when no format is given; raw (with the ISO hint) when none does. */
export function detectRow(b: HeaderBytes, nameHint: string | null = null): FormatRow {
  for (const row of FORMAT_TABLE) {
    if (row.format === 'raw') continue;
    const claims = row.probe === undefined ? row.magic.length > 0 && magicMatches(row, b) : row.probe(b, nameHint);
    if (claims) return row;
  }
  return probedRawRow;
}

/** The variant of `format` whose magic the file carries, or IMAGE_BAD_MAGIC naming what was expected. */
export function rowForFormat(b: HeaderBytes, format: ImageFormat): FormatRow {
  const rows = FORMAT_TABLE.filter((r) => r.format === format);
  for (const row of rows) if (magicMatches(row, b)) return row;
  const expected = rows.map((r) => r.magicText).join(' or ');
  throw new ImageError('IMAGE_BAD_MAGIC', `reading the image as ${format}: no ${format} header (expected ${expected})`, {
    context: { format, expected },
    suggestions: ['check the format given for this image (qemu-img info can tell, but do not trust it on untrusted images)'],
  });
}

function checkVersion(row: FormatRow, b: HeaderBytes, base: number): void {
  if (row.version === null) return;
  const v = readField(b, row, base, row.version, `${row.format} version`);
  if (!row.version.accepted.includes(v)) {
    throw new ImageError('IMAGE_UNSUPPORTED_VERSION', `${row.format} header (${row.variant}) has version ${v}; supported: ${row.version.accepted.join(', ')}`, {
      context: { format: row.format, version: v, accepted: row.version.accepted, offset: base + row.version.offset },
    });
  }
}

function tableVirtualSize(row: FormatRow, b: HeaderBytes, base: number): number | null {
  if (row.virtualSize === null) return null;
  const raw = readField(b, row, base, row.virtualSize, `${row.format} virtual size`);
  const size = raw * row.virtualSize.multiplier;
  if (!Number.isSafeInteger(size)) {
    throw new ImageError('IMAGE_BAD_FIELD', `${row.format} virtual size ${raw} × ${row.virtualSize.multiplier} is larger than any image can be`, {
      context: { field: 'virtual size', offset: base + row.virtualSize.offset, value: raw },
    });
  }
  return size;
}

/**
 * Reads one image's header facts from `b`. Pure: it either returns, throws an
 * ImageError, or throws NeedBytes when it needs bytes not read yet (the reader then
 * reads them, within the bound, and calls it again).
 */
export function parseImage(b: HeaderBytes, format: ImageFormat | null, nameHint: string | null = null): ParsedInfo {
  return parseWithRow(b, format === null ? detectRow(b, nameHint) : rowForFormat(b, format));
}

/** Reads `b` as exactly this row (used for rows outside the probing table, such as a VMDK extent). */
export function parseWithRow(b: HeaderBytes, row: FormatRow): ParsedInfo {
  if (!magicMatches(row, b)) {
    throw new ImageError('IMAGE_BAD_MAGIC', `reading the file as ${row.format} (${row.variant}): no header (expected ${row.magicText})`, { context: { format: row.format, expected: row.magicText } });
  }
  const base = baseOf(row, b);
  checkVersion(row, b, base);
  const virtualSize = tableVirtualSize(row, b, base);
  const d = row.details === undefined ? {} : row.details(b, base);
  const backingFilename = d.backingFilename === '' ? null : d.backingFilename ?? null;
  const size = d.virtualSize !== undefined ? d.virtualSize : virtualSize;
  const info: ParsedInfo = {
    format: row.format,
    // QEMU counts whole 512-byte sectors: a header size that is not a multiple is cut down
    virtualSize: size === null ? null : Math.floor(size / 512) * 512,
    // QEMU treats an empty recorded name (size 0, or a leading NUL) as no backing file at all,
    // and a recorded backing format without a backing file means nothing
    backingFilename,
    backingFormat: backingFilename === null ? null : d.backingFormat ?? null,
    encrypted: d.encrypted ?? false,
    dataFile: d.dataFile ?? null,
    dirty: d.dirty ?? false,
    corrupt: d.corrupt ?? false,
  };
  if (d.extents !== undefined) info.extents = d.extents;
  if (d.formatSpecific !== undefined) info.formatSpecific = d.formatSpecific;
  if (d.notes !== undefined && d.notes.length > 0) info.notes = d.notes;
  return info;
}
