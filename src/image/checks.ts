/** @module image/checks: the per-file checks of a chain walk: allowed directories, loops by (dev, ino), json:/protocol names, data files and VMDK extents. */
import { ImageError, atLayer } from './errors.js';
import { vmdkExtentRow } from './formats/vmdk.js';
import { classifyName, isInsideDirs, protocolOf, resolveRecorded } from './policy.js';
import { readWithRow } from './reader.js';
import type { Guard, Target } from './open.js';
import type { ImageOpener } from './source.js';
import type { ImageInfo } from './types.js';

/** What the walk carries from layer to layer. */
export interface Walk {
  opts: { allowJsonBackings?: boolean; allowProtocolBackings?: boolean };
  opener: ImageOpener;
  allowed: string[] | null;
  seen: Map<string, string>;
  maxDepth: number;
  /** Why each allowed directory is allowed (same order as `allowed`), for refusals. */
  allowedWhy?: string[];
  /** Real paths of data files allowed wherever they lie (the spec's dataFile). */
  dataFiles: string[];
  /** Real paths of the only device layers allowed (the spec's disk when it is a device); null: block devices are not policed. */
  devices: string[] | null;
  /** Refused-name fix (how to allow a directory in this caller's terms). */
  allowHint: string;
  /** Whether QEMU gets the top layer writable, and a check on such files, run before they are opened. */
  writableTop?: boolean;
  writableCheck?: (t: Target, what: string) => void;
  /** A check on every file the walk opens or hands on (`writable`: QEMU gets it read-write), run before it is opened: the VM owner's access. */
  accessCheck?: (t: Target, what: string, writable: boolean) => void;
}

/** Where a file was named, for refusals: "backing file X (recorded as "N" in OVERLAY)". */
export interface Naming { what: string; namedBy: { path: string; name: string } | null; top: boolean; writable: boolean }

function describe(path: string, real: string | null, n: Naming): string {
  const recorded = n.namedBy === null ? '' : ` (recorded as "${n.namedBy.name}" in ${n.namedBy.path})`;
  return `${n.what} ${path}${recorded}${real === path || real === null ? '' : `, really ${real},`}`;
}

/**
 * Refuses a file whose real path lies outside the allowed directories, naming the layer, the
 * path and the fix; returns the allowed directory it lies in (null when none is set or the
 * spec named the file itself).
 */
export function checkAllowed(w: Walk, path: string, real: string | null, what: string | Naming): string | null {
  if (w.allowed === null) return null;
  const n: Naming = typeof what === 'string' ? { what, namedBy: null, top: false, writable: false } : what;
  if (n.what === 'data file' && real !== null && w.dataFiles.includes(real)) return null;
  const inside = real === null ? undefined : w.allowed.find((d) => isInsideDirs(real, [d]));
  if (real === null || inside === undefined) {
    const places = w.allowed.map((d, i) => (w.allowedWhy?.[i] === undefined ? d : `${d} (${w.allowedWhy[i]})`)).join(', ');
    throw new ImageError('IMAGE_OUTSIDE_ALLOWED_DIRS', `${describe(path, real, n)} lies outside the places this chain may lead: ${places}; it was not opened`, {
      context: { layer: path, realPath: real, allowDirs: w.allowed, ...(n.namedBy === null ? {} : { namedBy: n.namedBy.path, recordedName: n.namedBy.name }) },
      suggestions: [n.what === 'data file' ? `if this data file is meant, name it on the disk (dataFile: ${real ?? path}) or ${w.allowHint}` : `move the file into an allowed directory, or ${w.allowHint}`],
    });
  }
  return inside;
}

/**
 * The checks that run on a resolved name before it is opened: allowed places, device
 * layers (only the spec's own disk), and the owner's access: read for every file, read and
 * write for files QEMU gets writable (on the target the open then holds: same dev/ino).
 */
export function guardFor(w: Walk, n: Naming): Guard {
  return (t) => {
    const ownDevice = n.top && w.devices !== null && w.devices.includes(t.realPath);
    const root = ownDevice ? null : checkAllowed(w, t.path, t.realPath, n);
    const special = t.kind === 'block' || t.kind === 'char' || t.kind === 'fifo' || t.kind === 'socket';
    if (special && w.devices !== null && !ownDevice) {
      throw new ImageError('IMAGE_DEVICE_REFUSED', `${describe(t.path, t.realPath, n)} is a ${t.kind === 'fifo' || t.kind === 'socket' ? t.kind : `${t.kind} device`}; a device is used only as a disk's own image, never because an image header names it; it was not opened`, {
        context: { layer: t.path, realPath: t.realPath, kind: t.kind, ...(n.namedBy === null ? {} : { namedBy: n.namedBy.path, recordedName: n.namedBy.name }) },
        suggestions: ['to give the VM a block device, name it as a disk\'s image in the spec (image: DEVICE, format: raw); otherwise fix the header: qemu-img rebase -u -b FILE -F FMT OVERLAY'],
      });
    }
    if (n.writable) w.writableCheck?.(t, n.what);
    w.accessCheck?.(t, n.what, n.writable);
    return root ?? undefined;
  };
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
export async function checkDataFile(w: Walk, layerPath: string, name: string, what: 'data file' | 'extent file' = 'data file', writable = false): Promise<{ path: string; id: { dev: number; ino: number } }> {
  checkName(w, layerPath, name, what);
  const path = resolveRecorded(layerPath, name);
  const n: Naming = { what, namedBy: { path: layerPath, name }, top: false, writable };
  try {
    const id = await w.opener.identify(path, { realPath: true, guard: guardFor(w, n) });
    checkAllowed(w, path, id.realPath, n);
    checkLoop(w, id, path, what);
    return { path, id: { dev: id.dev, ino: id.ino } };
  } catch (err) {
    if (!(err instanceof ImageError) || err.code !== 'IMAGE_NOT_FOUND') throw err;
    throw new ImageError('IMAGE_NOT_FOUND', `${what} ${path} (recorded as "${name}" in ${layerPath}) does not exist`, {
      context: { layer: path, namedBy: layerPath, recordedName: name }, cause: err.cause,
    });
  }
}

/** A sparse extent QEMU will open: its header gets the same bounded probe and checks (a descriptor there is bad magic). */
async function probeSparseExtent(w: Walk, path: string, n: Naming): Promise<void> {
  const src = await w.opener.open(path, { realPath: true, guard: guardFor(w, n) });
  try {
    await readWithRow(src, vmdkExtentRow);
  } catch (err) {
    throw err instanceof ImageError ? atLayer(err, path) : err;
  } finally {
    await src.close();
  }
}

/** A VMDK descriptor's extent files, each checked like a data file; sparse ones are probed too. */
export async function checkExtents(w: Walk, layerPath: string, info: ImageInfo, writable = false): Promise<{ extentPaths?: string[]; extentIds?: Array<{ dev: number; ino: number }> }> {
  if (info.extents === undefined) return {};
  const extentPaths: string[] = [];
  const extentIds: Array<{ dev: number; ino: number }> = [];
  for (const e of info.extents) {
    const { path, id } = await checkDataFile(w, layerPath, e.file, 'extent file', writable);
    if (e.type === 'SPARSE' || e.type === 'VMFSSPARSE') await probeSparseExtent(w, path, { what: 'extent file', namedBy: { path: layerPath, name: e.file }, top: false, writable });
    extentPaths.push(path);
    extentIds.push(id);
  }
  return { extentPaths, extentIds };
}

