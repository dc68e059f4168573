/** @module image/formats/cloop: compressed loop images (V2.0): block size × block count, checked as QEMU checks them. */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import type { Details, FormatRow } from './row.js';

const MAGIC = ascii('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n');
const MAX_BLOCK = 64 * 1024 * 1024;
const MAX_OFFSETS_BYTES = 512 * 1024 * 1024;

function cloopDetails(b: HeaderBytes): Details {
  const block = b.u32(128, false, 'cloop block_size');
  if (block === 0 || block % 512 !== 0 || block > MAX_BLOCK) throw badField('cloop block_size', 128, block, `must be a non-zero multiple of 512 up to ${MAX_BLOCK}`);
  const blocks = b.u32(132, false, 'cloop n_blocks');
  if ((blocks + 1) * 8 > MAX_OFFSETS_BYTES) throw badField('cloop n_blocks', 132, blocks, 'its offset table would pass QEMU\'s 512 MiB limit');
  return { virtualSize: blocks * block, notes: ['cloop images are read-only'] };
}

export const cloopRow: FormatRow = {
  format: 'cloop', variant: 'cloop v2.0', le: false,
  magic: [{ offset: 0, bytes: MAGIC }], magicText: 'the cloop V2.0 shell header at offset 0',
  version: null,
  virtualSize: null,
  details: cloopDetails,
};
