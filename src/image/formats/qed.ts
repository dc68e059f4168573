/** @module image/formats/qed: QED: size, backing name and the raw-backing flag (its only way of recording a backing format). */
import { ascii, badField, type HeaderBytes } from '../bytes.js';
import { ImageError } from '../errors.js';
import type { Details, FormatRow } from './row.js';

const F_BACKING_FILE = 1n;
const F_NEED_CHECK = 2n;
const F_BACKING_FORMAT_NO_PROBE = 4n;
const F_KNOWN = 7n;
/** QEMU copies the backing name into a PATH_MAX buffer. */
const MAX_BACKING_NAME = 4095;

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** QEMU's checks on the L1 table offset and the image size (no table is read). */
function checkTables(b: HeaderBytes, cluster: number, table: number, headerClusters: number): void {
  const l1 = b.u64(40, true, 'qed l1_table_offset');
  const tableBytes = table * cluster;
  if (l1 % cluster !== 0 || l1 < headerClusters * cluster || l1 + tableBytes > b.size) {
    throw badField('qed l1_table_offset', 40, l1, 'the L1 table must be cluster-aligned, after the header and inside the file');
  }
  const size = b.u64(48, true, 'qed image_size');
  const entries = tableBytes / 8;
  if (size % 512 !== 0 || size > entries * entries * cluster) throw badField('qed image_size', 48, size, 'not a multiple of 512 or larger than the tables can map');
}

function qedDetails(b: HeaderBytes): Details {
  const cluster = b.u32(4, true, 'qed cluster_size');
  if (!isPow2(cluster) || cluster < 4096 || cluster > 64 * 1024 * 1024) throw badField('qed cluster_size', 4, cluster, 'must be a power of two from 4 KiB to 64 MiB');
  const table = b.u32(8, true, 'qed table_size');
  if (!isPow2(table) || table > 16) throw badField('qed table_size', 8, table, 'must be a power of two from 1 to 16');
  const headerClusters = b.u32(12, true, 'qed header_size');
  if (headerClusters === 0) throw badField('qed header_size', 12, headerClusters, 'must be at least one cluster');
  checkTables(b, cluster, table, headerClusters);
  const features = b.u64big(16, true, 'qed features');
  if ((features & ~F_KNOWN) !== 0n) {
    throw new ImageError('IMAGE_UNSUPPORTED_FEATURE', `qed image sets feature bits 0x${(features & ~F_KNOWN).toString(16)} that QEMU 7.2 does not know`, {
      context: { features: `0x${features.toString(16)}` },
    });
  }
  let backingFilename: string | null = null;
  if ((features & F_BACKING_FILE) !== 0n) {
    const off = b.u32(56, true, 'qed backing_filename_offset');
    const len = b.u32(60, true, 'qed backing_filename_size');
    if (len > MAX_BACKING_NAME) throw badField('qed backing_filename_size', 60, len, `longer than QEMU's ${MAX_BACKING_NAME}-byte limit`);
    if (off + len > cluster * headerClusters) throw badField('qed backing_filename_offset', 56, off, `the name must lie inside the ${cluster * headerClusters}-byte header`);
    backingFilename = b.utf8(off, len, 'qed backing file name');
  }
  return {
    backingFilename,
    backingFormat: backingFilename !== null && (features & F_BACKING_FORMAT_NO_PROBE) !== 0n ? 'raw' : null,
    dirty: (features & F_NEED_CHECK) !== 0n,
  };
}

export const qedRow: FormatRow = {
  format: 'qed', variant: 'qed', le: true,
  magic: [{ offset: 0, bytes: ascii('QED\0') }], magicText: '"QED\\0" at offset 0',
  version: null,
  virtualSize: { offset: 48, width: 8, multiplier: 1 },
  details: qedDetails,
};
