/** @module image/formats/vmdk: VMDK sparse extents (KDMV, with the embedded descriptor) and text descriptor files (createType, extents, parentFileNameHint). */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import type { VmdkExtent } from '../types.js';
import type { Details, FormatRow } from './row.js';

const KDMV = ascii('KDMV');
/** QEMU looks for parentFileNameHint in this many bytes of descriptor (its DESC_SIZE). */
const DESC_SIZE = 20 * 512;
/** Where QEMU reads the embedded descriptor of a sparse extent from (it ignores desc_offset here). */
const EMBEDDED_DESC = 0x200;
const GD_AT_END = 0xffffffffffffffffn;
const MAX_EXTENTS = 256;
const CREATE_TYPES = ['monolithicFlat', 'vmfs', 'vmfsSparse', 'seSparse', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat'];
/** Extent types QEMU opens; lines of other types (ZERO included) are skipped. */
const EXTENT_TYPES = ['FLAT', 'SPARSE', 'VMFS', 'VMFSSPARSE', 'SESPARSE'];

/** Descriptor text as QEMU sees it: a C string, so it ends at the first NUL. */
function cText(b: HeaderBytes, offset: number, length: number): string {
  return b.cstring(offset, Math.min(length, b.size - offset), 'vmdk descriptor');
}

/** QEMU's parentFileNameHint rule: skip the key and two characters (`="`), take up to the next quote. */
function parentHint(desc: string): string | null {
  const at = desc.indexOf('parentFileNameHint');
  if (at < 0) return null;
  const start = at + 'parentFileNameHint'.length + 2;
  const end = desc.indexOf('"', start);
  if (end < 0) throw badField('vmdk parentFileNameHint', at, 'unterminated', 'no closing quote');
  return Buffer.from(desc.slice(start, end), 'latin1').toString('utf8');
}

/** QEMU refuses a VMDK whose descriptor does not record its CID and parentCID (it reads them on open). */
function checkCids(desc: string, at: number): void {
  if (!desc.includes('parentCID')) throw badField('vmdk descriptor', at, 'no CID/parentCID', 'QEMU needs both to open the image');
}

/** QEMU's text-descriptor probe: comment and blank lines, then a version=1|2|3 line. */
function looksLikeDescriptor(b: HeaderBytes): boolean {
  const head = cText(b, 0, Math.min(b.size, 2048));
  for (const line of head.split('\n')) {
    if (line.startsWith('#')) continue;
    if (/^ *\r?$/.test(line)) continue;
    return /^version=[123]\r?$/.test(line);
  }
  return false;
}

/** The header of a sparse extent; with the grain directory at the end (streamOptimized) QEMU uses the footer's copy. */
function sparseHeaderAt(b: HeaderBytes): number {
  if (b.u64big(56, true, 'vmdk gd_offset') !== GD_AT_END) return 0;
  const at = b.size - 1024;
  if (at < 512 || !b.matches(at, KDMV)) throw badField('vmdk footer', Math.max(0, at), 'missing', 'the grain directory is at the end but there is no footer header');
  return at;
}

/** The checks QEMU makes on any sparse extent header, and its capacity. */
function sparseExtent(b: HeaderBytes): { capacity: number } {
  const h = sparseHeaderAt(b);
  const gtes = b.u32(h + 44, true, 'vmdk num_gtes_per_gt');
  if (gtes > 512) throw badField('vmdk num_gtes_per_gt', h + 44, gtes, 'L2 table size too big (QEMU allows 512)');
  const grain = b.u64(h + 20, true, 'vmdk granularity');
  if (grain * gtes === 0) throw badField('vmdk granularity', h + 20, grain, 'the L1 entry size is zero');
  if (grain > 0x200000) throw badField('vmdk granularity', h + 20, grain, 'larger than QEMU allows');
  const capacity = b.u64(h + 12, true, 'vmdk capacity');
  if (Math.ceil(capacity / (grain * gtes)) > 32 * 1024 * 1024) throw badField('vmdk capacity', h + 12, capacity, 'its L1 table would be too big');
  const grainAt = b.u64(h + 64, true, 'vmdk grain_offset') * 512;
  if (Math.ceil(b.size / 512) * 512 < grainAt) throw badField('vmdk grain_offset', h + 64, grainAt / 512, `the ${b.size}-byte file is shorter than the header says (${grainAt} bytes)`);
  return { capacity };
}

/** A sparse VMDK opened as the image: QEMU also reads the CIDs and parent hint from its embedded descriptor. */
function sparseDetails(b: HeaderBytes): Details {
  const { capacity } = sparseExtent(b);
  const desc = cText(b, EMBEDDED_DESC, DESC_SIZE);
  checkCids(desc, EMBEDDED_DESC);
  const backing = parentHint(desc);
  // QEMU names a sparse file's type from its header, not from the descriptor text
  const createType = b.u16(sparseHeaderAt(b) + 77, true, 'vmdk compressAlgorithm') === 1 ? 'streamOptimized' : 'monolithicSparse';
  return {
    virtualSize: capacity * 512, backingFilename: backing, backingFormat: backing === null ? null : 'vmdk',
    formatSpecific: { createType },
  };
}

/** A descriptor line QEMU refuses outright ("Invalid extent line"). */
function invalidLine(line: string): never {
  throw badField('vmdk extent line', 0, JSON.stringify(line.slice(0, 80)), 'QEMU refuses it (wrong number of fields for its type)');
}

/**
 * One extent line as QEMU's sscanf (`%10s %d %10s "%511[^\n\r"]" %d`) reads it: only RW
 * lines count; FLAT needs an offset, VMFS must not have one, the others take exactly the
 * four fields; a name longer than 511 bytes is cut there (and then no offset is read);
 * lines of other types, or of no sectors, are skipped.
 */
function parseExtent(line: string): VmdkExtent | null {
  const m = /^\s*(\S+)\s+([+-]?\d+)\s+(\S+)\s+"([^\n\r"]+)(")?(?:\s*([+-]?\d+))?/.exec(line);
  if (m === null || m[1] !== 'RW' || m[3]!.length > 10) return null;
  const type = m[3]!;
  const cut = m[4]!.length > 511;
  const offset = m[5] !== undefined && !cut && m[6] !== undefined ? Number(m[6]) : null;
  if (type === 'FLAT' ? offset === null || offset < 0 : type === 'VMFS' ? offset !== null : offset !== null) invalidLine(line);
  const sectors = Number(m[2]);
  if (!Number.isSafeInteger(sectors) || sectors <= 0 || !EXTENT_TYPES.includes(type)) return null;
  const file = Buffer.from(m[4]!.slice(0, 511), 'latin1').toString('utf8');
  return { access: 'RW', sectors, type, file, offset: offset ?? 0 };
}

function descriptorDetails(b: HeaderBytes): Details {
  const text = cText(b, 0, b.size);
  const ct = /createType="([^"]*)"/.exec(text)?.[1];
  if (ct === undefined) throw badField('vmdk createType', 0, 'missing', 'not a valid VMDK descriptor');
  if (!CREATE_TYPES.includes(ct)) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', `vmdk descriptor has createType "${ct}", which QEMU does not open`, { context: { createType: ct } });
  }
  const extents: VmdkExtent[] = [];
  for (const line of text.split('\n')) {
    const e = parseExtent(line);
    if (e === null) continue;
    if (extents.length >= MAX_EXTENTS) throw badField('vmdk extents', 0, `more than ${MAX_EXTENTS}`, 'too many extents');
    extents.push(e);
  }
  if (extents.length === 0) throw badField('vmdk extents', 0, 'none', 'the descriptor lists no usable (RW) extent');
  const sectors = extents.reduce((n, e) => n + e.sectors, 0);
  const head = cText(b, 0, DESC_SIZE);
  checkCids(head, 0);
  const backing = parentHint(head);
  return {
    virtualSize: sectors * 512, backingFilename: backing, backingFormat: backing === null ? null : 'vmdk', extents,
    formatSpecific: { createType: ct },
    notes: [`descriptor (${ct}) with ${extents.length} extent file(s), which QEMU opens by name`],
  };
}

export const vmdkSparseRow: FormatRow = {
  format: 'vmdk', variant: 'sparse extent', le: true,
  magic: [{ offset: 0, bytes: KDMV }], magicText: '"KDMV" at offset 0',
  version: { offset: 4, width: 4, accepted: [1, 2, 3] },
  virtualSize: { offset: 12, width: 8, multiplier: 512 },
  details: sparseDetails,
};

/** A sparse extent named by a descriptor: only the header checks (its embedded descriptor, if any, is not used). */
export const vmdkExtentRow: FormatRow = {
  ...vmdkSparseRow, variant: 'sparse extent of a descriptor',
  details: (b) => ({ virtualSize: sparseExtent(b).capacity * 512 }),
};

/** A text descriptor file: the whole file (at most the read bound) is the descriptor. */
export const vmdkDescriptorRow: FormatRow = {
  format: 'vmdk', variant: 'text descriptor', le: true,
  magic: [], magicText: 'a text descriptor starting with version=1, 2 or 3',
  identify: looksLikeDescriptor,
  probe: looksLikeDescriptor,
  version: null,
  virtualSize: null,
  details: descriptorDetails,
};
