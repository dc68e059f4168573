/** @module image/checks: the per-file checks of a chain walk: allowed directories, loops by (dev, ino), json:/protocol names, data files and VMDK extents. */
import { ImageError, atLayer } from './errors.js';
import { vmdkExtentRow } from './formats/vmdk.js';
import { classifyName, isInsideDirs, protocolOf, resolveRecorded } from './policy.js';
import { readWithRow } from './reader.js';
import type { ImageOpener } from './source.js';
import type { ImageInfo } from './types.js';

/** What the walk carries from layer to layer. */
export interface Walk {
  opts: { allowJsonBackings?: boolean; allowProtocolBackings?: boolean };
  opener: ImageOpener;
  allowed: string[] | null;
  seen: Map<string, string>;
  maxDepth: number;
}

/** Refuses a file whose real path (from its open fd) lies outside the allowed directories, naming both. */
export function checkAllowed(w: Walk, path: string, real: string | null, what: string): void {
  if (w.allowed === null) return;
  if (real === null || !isInsideDirs(real, w.allowed)) {
    throw new ImageError('IMAGE_OUTSIDE_ALLOWED_DIRS', `${what} ${path}${real === path || real === null ? '' : ` (really ${real})`} lies outside the allowed directories ${w.allowed.join(', ')}`, {
      context: { layer: path, realPath: real, allowDirs: w.allowed },
      suggestions: ['move the image into an allowed directory, or allow its directory (--allow-dir)'],
    });
  }
}

/** Records (dev, ino) and refuses a file already seen in this chain, whatever name it was reached by. */
export function checkLoop(w: Walk, id: { dev: number; ino: number }, path: string, what: string): void {
  const key = `${id.dev}:${id.ino}`;
  const before = w.seen.get(key);
  if (before !== undefined) {
    throw new ImageError('IMAGE_CHAIN_LOOP', `${what} ${path} is the same file as ${before}, already in this chain (device ${id.dev}, inode ${id.ino})`, {
      context: { layer: path, sameAs: before, dev: id.dev, ino: id.ino },
    });
  }
  w.seen.set(key, path);
}

/** Refuses json: and protocol names unless allowed; returns false when the edge is allowed but not followed. */
export function checkName(w: Walk, overlay: string, name: string, what: 'backing file' | 'data file' | 'extent file'): boolean {
  const kind = classifyName(name);
  if (kind === 'file') return true;
  const allowed = what === 'backing file' && (kind === 'json' ? w.opts.allowJsonBackings : w.opts.allowProtocolBackings) === true;
  if (allowed) return false;
  if (kind === 'json') {
    throw new ImageError('IMAGE_BACKING_JSON', `${overlay} names its ${what} with a json: option string, which is refused`, {
      context: { layer: overlay, name },
      suggestions: ['rebase the overlay onto a plain file name (qemu-img rebase -u -b FILE -F FMT), or allow json: backings in the spec'],
    });
  }
  throw new ImageError('IMAGE_BACKING_PROTOCOL', `${overlay} names its ${what} through the ${protocolOf(name)}: protocol ("${name}"), which is refused`, {
    context: { layer: overlay, name, protocol: protocolOf(name) },
    suggestions: ['rebase the overlay onto a local file (use ./NAME for a file whose name contains a colon), or allow protocol backings in the spec'],
  });
}

/** Resolves and checks an external data file or VMDK extent like a layer (named, allowed, not a loop, present). */
export async function checkDataFile(w: Walk, layerPath: string, name: string, what: 'data file' | 'extent file' = 'data file'): Promise<string> {
  checkName(w, layerPath, name, what);
  const path = resolveRecorded(layerPath, name);
  try {
    const id = await w.opener.identify(path, { realPath: w.allowed !== null });
    checkAllowed(w, path, id.realPath, what);
    checkLoop(w, id, path, what);
  } catch (err) {
    if (!(err instanceof ImageError) || err.code !== 'IMAGE_NOT_FOUND') throw err;
    throw new ImageError('IMAGE_NOT_FOUND', `${what} ${path} (recorded as "${name}" in ${layerPath}) does not exist`, {
      context: { layer: path, namedBy: layerPath, recordedName: name }, cause: err.cause,
    });
  }
  return path;
}

/** A sparse extent QEMU will open: its header gets the same bounded probe and checks (a descriptor there is bad magic). */
async function probeSparseExtent(w: Walk, path: string): Promise<void> {
  const src = await w.opener.open(path);
  try {
    await readWithRow(src, vmdkExtentRow);
  } catch (err) {
    throw err instanceof ImageError ? atLayer(err, path) : err;
  } finally {
    await src.close();
  }
}

/** A VMDK descriptor's extent files, each checked like a data file; sparse ones are probed too. */
export async function checkExtents(w: Walk, layerPath: string, info: ImageInfo): Promise<{ extentPaths?: string[] }> {
  if (info.extents === undefined) return {};
  const extentPaths: string[] = [];
  for (const e of info.extents) {
    const path = await checkDataFile(w, layerPath, e.file, 'extent file');
    if (e.type === 'SPARSE' || e.type === 'VMFSSPARSE') await probeSparseExtent(w, path);
    extentPaths.push(path);
  }
  return { extentPaths };
}

