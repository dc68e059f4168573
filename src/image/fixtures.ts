/** @module image/fixtures: minimal images built from the format specs for formats qemu-img cannot create (bochs, cloop, dmg); for tests and the fuzz seeds. */

const enc = (s: string) => Buffer.from(s, 'latin1');

/** A Bochs growing redolog (v2, or v1 with `v1`) of `size` bytes with an empty catalog. */
export function bochsImage(size: number, options: { v1?: boolean; extent?: number } = {}): Buffer {
  const extent = options.extent ?? 64 * 1024;
  const catalog = Math.max(1, Math.ceil(size / extent));
  const headerSize = 512;
  const buf = Buffer.alloc(headerSize + catalog * 4, 0);
  enc('Bochs Virtual HD Image').copy(buf, 0);
  enc('Redolog').copy(buf, 32);
  enc('Growing').copy(buf, 48);
  buf.writeUInt32LE(options.v1 === true ? 0x00010000 : 0x00020000, 64);
  buf.writeUInt32LE(headerSize, 68);
  buf.writeUInt32LE(catalog, 72);
  buf.writeUInt32LE(512, 76); // bitmap size
  buf.writeUInt32LE(extent, 80);
  buf.writeBigUInt64LE(BigInt(size), options.v1 === true ? 84 : 88);
  buf.fill(0xff, headerSize); // every catalog entry unallocated
  return buf;
}

const CLOOP_MAGIC = '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n';

/** A cloop V2.0 image of `blocks` blocks of `blockSize` bytes (offsets valid, contents not real zlib). */
export function cloopImage(blocks: number, blockSize = 64 * 1024): Buffer {
  const tableAt = 136;
  const dataAt = tableAt + (blocks + 1) * 8;
  const buf = Buffer.alloc(dataAt + blocks * 16, 0);
  enc(CLOOP_MAGIC).copy(buf, 0);
  buf.writeUInt32BE(blockSize, 128);
  buf.writeUInt32BE(blocks, 132);
  for (let i = 0; i <= blocks; i++) buf.writeBigUInt64BE(BigInt(dataAt + i * 16), tableAt + i * 8);
  return buf;
}

/** A "mish" block with one all-zero chunk covering `sectors` sectors. */
function mish(sectors: number): Buffer {
  const m = Buffer.alloc(204 + 40, 0);
  enc('mish').copy(m, 0);
  m.writeUInt32BE(1, 4);
  m.writeBigUInt64BE(0n, 8); // first sector
  m.writeBigUInt64BE(BigInt(sectors), 16);
  m.writeUInt32BE(1, 200); // chunk count
  m.writeUInt32BE(0, 204); // UDZE: zeros
  m.writeBigUInt64BE(0n, 204 + 8);
  m.writeBigUInt64BE(BigInt(sectors), 204 + 0x10);
  return m;
}

/** A UDIF (dmg) image of `sectors` sectors: an XML property list holding one mish block, then the koly trailer. */
export function dmgImage(sectors: number): Buffer {
  const plist = enc(`<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>resource-fork</key><dict><key>blkx</key><array><dict><key>Data</key><data>${mish(sectors).toString('base64')}</data></dict></array></dict></dict></plist>\n`);
  const koly = Buffer.alloc(512, 0);
  enc('koly').copy(koly, 0);
  koly.writeUInt32BE(4, 4);
  koly.writeUInt32BE(512, 8);
  koly.writeBigUInt64BE(0n, 0x18); // data fork offset
  koly.writeBigUInt64BE(0n, 0x20); // data fork length
  koly.writeBigUInt64BE(0n, 0x28); // resource fork offset
  koly.writeBigUInt64BE(0n, 0x30); // resource fork length
  koly.writeBigUInt64BE(0n, 0xd8); // XML offset
  koly.writeBigUInt64BE(BigInt(plist.length), 0xe0);
  koly.writeBigUInt64BE(BigInt(sectors), 0x1ec);
  return Buffer.concat([plist, koly]);
}

/** An ISO 9660 primary volume descriptor in sector 16 (QEMU reads such a file as raw). */
export function isoImage(): Buffer {
  const buf = Buffer.alloc(18 * 2048, 0);
  buf[16 * 2048] = 1;
  enc('CD001').copy(buf, 16 * 2048 + 1);
  buf[16 * 2048 + 6] = 1;
  buf[17 * 2048] = 255; // terminator
  enc('CD001').copy(buf, 17 * 2048 + 1);
  return buf;
}

/**
 * A qcow2 image (`image`, as qemu-img made it, 64 KiB clusters) with `count` internal
 * snapshot entries appended: a valid table QEMU reads in full at open, which costs it
 * seconds at QEMU's limit of 65,536; the prober never reads it.
 */
export function qcow2WithSnapshots(image: Buffer, count: number): Buffer {
  const cluster = 65536;
  const extra = 24; // vm_state_size_large, disk_size, icount
  const entries: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const id = Buffer.from(String(i + 1));
    const name = Buffer.from(`s${i}`);
    const e = Buffer.alloc(Math.ceil((40 + extra + id.length + name.length) / 8) * 8);
    e.writeUInt16BE(id.length, 12);
    e.writeUInt16BE(name.length, 14);
    e.writeUInt32BE(extra, 36);
    e.writeBigUInt64BE(image.readBigUInt64BE(24), 40 + 8);
    id.copy(e, 40 + extra);
    name.copy(e, 40 + extra + id.length);
    entries.push(e);
  }
  const table = Buffer.concat(entries);
  const tableAt = Math.ceil(image.length / cluster) * cluster;
  const out = Buffer.alloc(tableAt + Math.ceil(table.length / cluster) * cluster);
  image.copy(out);
  table.copy(out, tableAt);
  out.writeUInt32BE(count, 60);
  out.writeBigUInt64BE(BigInt(tableAt), 64);
  return out;
}
