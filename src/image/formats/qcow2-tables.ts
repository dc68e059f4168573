/** @module image/formats/qcow2-tables: the qcow2 table fields QEMU validates at open (sizes, alignment), checked from the header alone without reading a table. */
import { badField, type HeaderBytes } from '../bytes.js';

/** QEMU 7.2's limits (block/qcow2.h). */
const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
const MAX_L1_BYTES = 32 * 1024 * 1024;
const MAX_SNAPSHOTS = 65536;
const INT64_MAX = 2n ** 63n - 1n;
const SNAPSHOT_HEADER = 40;
/** Above this many internal snapshots a note warns that QEMU reads them all at open. */
const MANY_SNAPSHOTS = 1000;

/** QEMU's qcow2_validate_table: not too many entries, and the table cluster-aligned. */
function checkTable(b: HeaderBytes, name: string, at: { offset: number; count: number }, entries: number, entryLen: number, maxBytes: number, cluster: number): void {
  if (entries > maxBytes / entryLen) throw badField(`qcow2 ${name} size`, at.count, entries, `the table would be larger than QEMU's ${maxBytes}-byte limit`);
  const offset = b.u64big(at.offset, false, `qcow2 ${name} offset`);
  const bytes = BigInt(entries * entryLen);
  if (offset % BigInt(cluster) !== 0n || offset > INT64_MAX - bytes) throw badField(`qcow2 ${name} offset`, at.offset, offset, `not aligned to the ${cluster}-byte cluster, or the table would pass 2^63`);
}

/**
 * Checks the L1, refcount and snapshot table fields as QEMU does before it reads any
 * table; returns notes (a large snapshot table is legal but costly for QEMU to open).
 */
export function checkQcow2Tables(b: HeaderBytes, version: number, clusterBits: number, extendedL2: boolean): string[] {
  const cluster = 2 ** clusterBits;
  if (version >= 3) {
    const order = b.u32(96, false, 'qcow2 refcount_order');
    if (order > 6) throw badField('qcow2 refcount_order', 96, order, 'refcount entries may not exceed 64 bits');
  }
  if (extendedL2 && clusterBits < 14) throw badField('qcow2 cluster_bits', 20, clusterBits, 'extended L2 entries need clusters of at least 16 KiB');
  const refClusters = b.u32(56, false, 'qcow2 refcount_table_clusters');
  if (refClusters > MAX_REFTABLE_BYTES / cluster) throw badField('qcow2 refcount_table_clusters', 56, refClusters, 'the refcount table would be too large');
  checkTable(b, 'refcount table', { offset: 48, count: 56 }, refClusters * (cluster / 8), 8, MAX_REFTABLE_BYTES, cluster);
  const snapshots = b.u32(60, false, 'qcow2 nb_snapshots');
  if (snapshots > MAX_SNAPSHOTS) throw badField('qcow2 nb_snapshots', 60, snapshots, `more than QEMU's ${MAX_SNAPSHOTS} snapshots`);
  checkTable(b, 'snapshot table', { offset: 64, count: 60 }, snapshots, SNAPSHOT_HEADER, SNAPSHOT_HEADER * MAX_SNAPSHOTS, cluster);
  const l1 = b.u32(36, false, 'qcow2 l1_size');
  checkTable(b, 'L1 table', { offset: 40, count: 36 }, l1, 8, MAX_L1_BYTES, cluster);
  const l2Bits = clusterBits - (extendedL2 ? 4 : 3);
  const needed = Math.ceil(b.u64(24, false, 'qcow2 size') / 2 ** (clusterBits + l2Bits));
  if (l1 < needed) throw badField('qcow2 l1_size', 36, l1, `too small for the virtual size (needs ${needed} entries)`);
  return snapshots > MANY_SNAPSHOTS ? [`${snapshots} internal snapshots: QEMU reads the whole snapshot table when it opens the image`] : [];
}
