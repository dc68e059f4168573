/** @module image/formats/crc32c: CRC-32C (Castagnoli), which VHDX uses for its header checksums. */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `data`, with the 4 bytes at `skip` (the checksum field) counted as zeros. */
export function crc32c(data: Uint8Array, skip = -1): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const byte = i >= skip && i < skip + 4 ? 0 : data[i]!;
    c = TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}
