/** @module image/formats/vdi: VirtualBox VDI 1.1: disk size and the checks QEMU makes before it reads the block map. */
import { badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import type { Details, FormatRow } from './row.js';

const SIGNATURE = Uint8Array.of(0x7f, 0x10, 0xda, 0xbe); // 0xbeda107f little-endian
const BLOCK_SIZE = 1024 * 1024;
/** QEMU's VDI_BLOCKS_IN_IMAGE_MAX: the block map must fit in INT_MAX bytes. */
const MAX_BLOCKS = Math.floor((2 ** 31 - 512) / 4);

function isZero(b: HeaderBytes, offset: number, length: number, what: string): boolean {
  return b.bytes(offset, length, what).every((x) => x === 0);
}

function vdiDetails(b: HeaderBytes): Details {
  const bmap = b.u32(0x154, true, 'vdi offset_bmap');
  if (bmap % 512 !== 0) throw badField('vdi offset_bmap', 0x154, bmap, 'not sector aligned');
  const data = b.u32(0x158, true, 'vdi offset_data');
  if (data % 512 !== 0) throw badField('vdi offset_data', 0x158, data, 'not sector aligned');
  const sector = b.u32(0x168, true, 'vdi sector_size');
  if (sector !== 512) throw badField('vdi sector_size', 0x168, sector, 'QEMU supports only 512');
  const block = b.u32(0x178, true, 'vdi block_size');
  if (block !== BLOCK_SIZE) throw badField('vdi block_size', 0x178, block, `QEMU supports only ${BLOCK_SIZE}`);
  const blocks = b.u32(0x180, true, 'vdi blocks_in_image');
  if (blocks > MAX_BLOCKS) throw badField('vdi blocks_in_image', 0x180, blocks, `more than QEMU's ${MAX_BLOCKS}`);
  const disk = Math.ceil(b.u64(0x170, true, 'vdi disk_size') / 512) * 512;
  if (disk > blocks * block) throw badField('vdi disk_size', 0x170, disk, `larger than the ${blocks} blocks the map covers`);
  if (!isZero(b, 0x1a8, 16, 'vdi uuid_link') || !isZero(b, 0x1b8, 16, 'vdi uuid_parent')) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', 'vdi image is a differencing image (non-null link or parent UUID), which QEMU does not read', {
      context: { field: 'uuid_parent' },
    });
  }
  return { virtualSize: disk };
}

export const vdiRow: FormatRow = {
  format: 'vdi', variant: 'vdi', le: true,
  magic: [{ offset: 0x40, bytes: SIGNATURE }], magicText: 'signature 0xbeda107f at offset 0x40',
  version: { offset: 0x44, width: 4, accepted: [0x00010001] },
  virtualSize: { offset: 0x170, width: 8, multiplier: 1 },
  details: vdiDetails,
};
