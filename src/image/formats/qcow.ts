/** @module image/formats/qcow: QEMU's original qcow (version 1): size, backing name (no recorded format), AES encryption. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const QFI = ascii('QFI\xfb');
const MAX_BACKING_NAME = 1023;

function qcowDetails(b: HeaderBytes): Details {
  const size = b.u64(24, false, 'qcow size');
  if (size <= 1) throw badField('qcow size', 24, size, 'QEMU needs at least 2 bytes');
  const clusterBits = b.u8(32, 'qcow cluster_bits');
  if (clusterBits < 9 || clusterBits > 16) throw badField('qcow cluster_bits', 32, clusterBits, 'must be 9..16');
  const l2Bits = b.u8(33, 'qcow l2_bits');
  if (l2Bits < 6 || l2Bits > 13) throw badField('qcow l2_bits', 33, l2Bits, 'must be 6..13');
  if (Math.ceil(size / 2 ** (clusterBits + l2Bits)) > Math.floor(0x7fffffff / 8)) throw badField('qcow size', 24, size, 'too large: its L1 table would pass QEMU\'s limit');
  const crypt = b.u32(36, false, 'qcow crypt_method');
  if (crypt > 1) throw badField('qcow crypt_method', 36, crypt, 'qcow knows only 0 (none) and 1 (AES)');
  const offset = b.u64(8, false, 'qcow backing_file_offset');
  let backingFilename: string | null = null;
  if (offset !== 0) {
    const len = b.u32(16, false, 'qcow backing_file_size');
    if (len > MAX_BACKING_NAME) throw badField('qcow backing_file_size', 16, len, `longer than QEMU's ${MAX_BACKING_NAME}-byte limit`);
    backingFilename = b.utf8(offset, len, 'qcow backing file name');
  }
  return { backingFilename, encrypted: crypt !== 0 };
}

export const qcowRow: FormatRow = {
  format: 'qcow', variant: 'qcow v1', le: false,
  magic: [{ offset: 0, bytes: QFI }], magicText: '"QFI\\xfb" at offset 0 with version 1',
  version: { offset: 4, width: 4, accepted: [1] },
  virtualSize: { offset: 24, width: 8, multiplier: 1 },
  probe: (b) => b.matches(0, QFI) && b.u32(4, false) === 1,
  details: qcowDetails,
};
