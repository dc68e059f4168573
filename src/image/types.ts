/** @module image/types: what the prober reports about one image and one backing chain (the contract the planner consumes). */

/** Format names as QEMU spells them. */
export type ImageFormat =
  | 'raw' | 'qcow2' | 'qcow' | 'qed' | 'vmdk' | 'vdi' | 'vpc' | 'vhdx'
  | 'parallels' | 'luks' | 'bochs' | 'cloop' | 'dmg';

/** One image's header facts; null where the format has no such field or the image does not set it. */
export interface ImageInfo {
  format: ImageFormat;
  virtualSize: number | null;
  /** The backing name exactly as recorded in the header (not resolved). */
  backingFilename: string | null;
  /** The backing format recorded in the header, if any. */
  backingFormat: ImageFormat | null;
  encrypted: boolean;
  /** An external data file name as recorded (qcow2 extension 0x44415441). */
  dataFile: string | null;
  dirty: boolean;
  corrupt: boolean;
  /** Bytes read from the file to learn all this (bounded: at most 64 KiB). */
  bytesRead: number;
  /** VMDK descriptor files: the extent files QEMU opens by name (recorded names, not resolved). */
  extents?: VmdkExtent[];
  /**
   * Format-specific facts, named as QEMU's `format-specific` data names them but in
   * camelCase (qcow2: compat, clusterSize, refcountBits, lazyRefcounts, extendedL2,
   * compressionType, dataFileRaw, encryption; vmdk: createType; vpc: subformat).
   */
  formatSpecific?: Record<string, string | number | boolean>;
  /** Hints for the reader (e.g. "ISO 9660 image: QEMU treats it as raw"). */
  notes?: string[];
}

/** One RW extent line of a VMDK text descriptor. */
export interface VmdkExtent {
  access: string;
  sectors: number;
  type: string;
  file: string;
  offset: number;
}

/** One layer of a chain: the info plus where it really is. */
export interface ChainLayer extends ImageInfo {
  /** Absolute path of this layer (backing names resolved against the overlay's directory). */
  path: string;
  /** Absolute path of the external data file, resolved like a backing name, or null. */
  dataFilePath: string | null;
  /** The data file's device and inode as checked (the fd QEMU gets must be this file). */
  dataFileId?: { dev: number; ino: number };
  /** Absolute paths of a VMDK descriptor's extent files (checked like data files), when it has any. */
  extentPaths?: string[];
  /** Their device and inode as checked, in the same order. */
  extentIds?: Array<{ dev: number; ino: number }>;
  /** Device and inode, for loop detection and to recognise the same file under two names. */
  dev: number;
  ino: number;
  /** File size in bytes. */
  size: number;
}

/** A chain from the top layer (index 0) to the bottom (no backing file). */
export interface ImageChain {
  layers: ChainLayer[];
  /**
   * Set when the walk stopped at a json: or protocol backing name the caller allowed
   * (allowJsonBackings / allowProtocolBackings): layers[layer] names `name`, not followed.
   */
  unfollowed?: { layer: number; name: string; kind: 'json' | 'protocol' };
}
