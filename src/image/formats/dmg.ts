/** @module image/formats/dmg: Apple UDIF (dmg): the "koly" trailer near the end, its fork bounds and sector count. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const KOLY = ascii('koly');
const TRAILER = 512;
/** QEMU caps the XML property list at 16 MiB; it is where the chunk tables live. */
const MAX_PLIST = 16 * 1024 * 1024;

/**
 * Where the trailer is. QEMU searches the last 1023 bytes for "koly"; images put it in
 * the last 512, which is all this reads (a trailer elsewhere is refused as bad magic).
 */
function trailerAt(b: HeaderBytes): number {
  return Math.max(0, b.size - TRAILER);
}

function dmgDetails(b: HeaderBytes, k: number): Details {
  const dataFork = b.u64(k + 0x18, false, 'dmg DataForkOffset');
  if (dataFork > k) throw badField('dmg DataForkOffset', k + 0x18, dataFork, 'points past the trailer');
  const rsrcOff = b.u64(k + 0x28, false, 'dmg RsrcForkOffset');
  const rsrcLen = b.u64(k + 0x30, false, 'dmg RsrcForkLength');
  if (rsrcOff >= k || rsrcLen > k - rsrcOff) throw badField('dmg resource fork', k + 0x28, `${rsrcOff}+${rsrcLen}`, 'runs past the trailer');
  const xmlOff = b.u64(k + 0xd8, false, 'dmg XMLOffset');
  const xmlLen = b.u64(k + 0xe0, false, 'dmg XMLLength');
  if (xmlOff >= k || xmlLen > k - xmlOff) throw badField('dmg property list', k + 0xd8, `${xmlOff}+${xmlLen}`, 'runs past the trailer');
  if (rsrcLen === 0 && (xmlLen === 0 || xmlLen > MAX_PLIST)) throw badField('dmg property list', k + 0xe0, xmlLen, 'no resource fork and no usable property list');
  const sectors = b.u64(k + 0x1ec, false, 'dmg SectorCount');
  return { virtualSize: sectors * 512, notes: ['dmg: the size is the trailer\'s sector count; QEMU also parses the chunk tables, which this prober does not read'] };
}

/** QEMU probes dmg by file name only (".dmg", weakly); so does this row. */
export const dmgRow: FormatRow = {
  format: 'dmg', variant: 'udif', le: false,
  base: trailerAt,
  magic: [{ offset: 0, bytes: KOLY }], magicText: '"koly" in the last 512 bytes',
  version: { offset: 4, width: 4, accepted: [4] },
  virtualSize: null,
  probe: (b, name) => name !== null && name.length > 4 && name.endsWith('.dmg') && b.size >= TRAILER && b.matches(trailerAt(b), KOLY),
  details: dmgDetails,
};
