/** @module image: the table-driven image prober and backing-chain walker. */
import { basename, resolve } from 'node:path';
import { ImageError, atLayer } from './errors.js';
import { readImageInfo } from './reader.js';
import { nodeImageOpener, type ImageOpener } from './source.js';
import type { ImageFormat, ImageInfo } from './types.js';

export type { ImageFormat, ImageInfo, ChainLayer, ImageChain, VmdkExtent } from './types.js';
export { ImageError, IMAGE_CODES, IMAGE_POLICY_CODES, type ImageErrorCode } from './errors.js';
export { walkChainConfined, chainPolicy, chainFiles, callerOwner, walkOptionsFor, type ChainPolicy, type DiskPlace, type ConfinedWalk } from './confine.js';
export { loadHostPolicy, parseHostPolicy, hostPolicyFile, DEFAULT_POLICY_FILE, type HostPolicy } from './host-policy.js';
export { openCheckedSync, resolveTarget, O_PATH, type CheckedOpen, type OpenedFile, type FileKind, type Target, type Guard } from './open.js';
export { ownerDenial, ownerAccessCheck, ownerFromUid, modeAllows, type Owner } from './access.js';
export { walkChain, DEFAULT_MAX_DEPTH, type WalkOptions } from './chain.js';
export { MAX_HEADER_BYTES, readImageInfo, type ByteSource } from './reader.js';
export { IMAGE_FORMATS, isImageFormat } from './formats/names.js';
export { nodeImageOpener, type ImageOpener, type ImageSource, type FileIdentity, type OpenOptions } from './source.js';

/** Probes one image (its format given, or probed when absent) with one bounded read; errors name the path. */
export async function probeImage(path: string, options: { format?: ImageFormat; opener?: ImageOpener } = {}): Promise<ImageInfo> {
  const abs = resolve(path);
  const src = await (options.opener ?? nodeImageOpener).open(abs);
  try {
    return await readImageInfo(src, options.format ?? null, basename(abs));
  } catch (err) {
    throw err instanceof ImageError && err.layer === null ? atLayer(err, abs) : err;
  } finally {
    await src.close();
  }
}
export { qcow2Empty, qcow2Overlay, type OverlaySpec } from './overlay.js';
