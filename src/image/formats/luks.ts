/** @module image/formats/luks: LUKS1 as QEMU's luks driver reads it: always encrypted, the payload after payload_offset sectors. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const SLOTS = 8;
const SLOT_AT = 208;
const SLOT_SIZE = 48;
const SLOT_ENABLED = 0x00ac71f3;
const SLOT_DISABLED = 0x0000dead;
const STRIPES = 4000;
/** The LUKS1 header is 592 bytes: key material may start at sector 2 at the earliest. */
const HEADER_SECTORS = 2;

/** QEMU's key-slot checks (state, stripes, key material between the header and the payload). */
function checkSlots(b: HeaderBytes, payloadSector: number): void {
  const keyLen = b.u32(108, false, 'luks key_bytes');
  for (let i = 0; i < SLOTS; i++) {
    const at = SLOT_AT + i * SLOT_SIZE;
    const active = b.u32(at, false, `luks key slot ${i} state`);
    if (active !== SLOT_ENABLED && active !== SLOT_DISABLED) throw badField(`luks key slot ${i} state`, at, active, 'neither enabled nor disabled');
    const stripes = b.u32(at + 44, false, `luks key slot ${i} stripes`);
    if (stripes !== STRIPES) throw badField(`luks key slot ${i} stripes`, at + 44, stripes, `must be ${STRIPES}`);
    const start = b.u32(at + 40, false, `luks key slot ${i} offset`);
    const sectors = Math.ceil((keyLen * stripes) / 512);
    if (start < HEADER_SECTORS || start + sectors > payloadSector) throw badField(`luks key slot ${i} offset`, at + 40, start, 'the key material overlaps the header or the payload');
  }
}

function luksDetails(b: HeaderBytes): Details {
  const payloadSector = b.u32(104, false, 'luks payload_offset');
  const payload = payloadSector * 512;
  if (payload > b.size) throw badField('luks payload_offset', 104, payloadSector, `the payload would start past the end of the ${b.size}-byte file`);
  if (b.u32(164, false, 'luks mk_digest_iterations') === 0) throw badField('luks mk_digest_iterations', 164, 0, 'the key iteration count is zero');
  checkSlots(b, payloadSector);
  const cipher = b.cstring(8, 32, 'luks cipher_name');
  const mode = b.cstring(40, 32, 'luks cipher_mode');
  // QEMU takes the file's length in whole sectors (rounded up), less the payload offset
  return { virtualSize: Math.ceil(b.size / 512) * 512 - payload, encrypted: true, notes: [`cipher ${cipher}-${mode}; QEMU needs the key secret to open it`] };
}

export const luksRow: FormatRow = {
  format: 'luks', variant: 'luks1', le: false,
  magic: [{ offset: 0, bytes: ascii('LUKS\xba\xbe') }], magicText: '"LUKS\\xba\\xbe" at offset 0',
  version: { offset: 6, width: 2, accepted: [1] },
  virtualSize: null,
  details: luksDetails,
};
