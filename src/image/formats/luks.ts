/** @module image/formats/luks: LUKS1 as QEMU's luks driver reads it: always encrypted, the payload after payload_offset sectors. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

function luksDetails(b: HeaderBytes): Details {
  const payload = b.u32(104, false, 'luks payload_offset') * 512;
  if (payload > b.size) throw badField('luks payload_offset', 104, payload / 512, `the payload would start past the end of the ${b.size}-byte file`);
  const cipher = b.cstring(8, 32, 'luks cipher_name');
  const mode = b.cstring(40, 32, 'luks cipher_mode');
  return { virtualSize: b.size - payload, encrypted: true, notes: [`cipher ${cipher}-${mode}; QEMU needs the key secret to open it`] };
}

export const luksRow: FormatRow = {
  format: 'luks', variant: 'luks1', le: false,
  magic: [{ offset: 0, bytes: ascii('LUKS\xba\xbe') }], magicText: '"LUKS\\xba\\xbe" at offset 0',
  version: { offset: 6, width: 2, accepted: [1] },
  virtualSize: null,
  details: luksDetails,
};
