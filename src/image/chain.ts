/** @module image/chain: the backing-chain walker: follows backing edges from the top layer under the image policy, one bounded probe per layer. */
import { ImageError, atLayer } from './errors.js';
import { classifyName, isInsideDirs, protocolOf, rebaseHint, resolveRecorded } from './policy.js';
import { readImageInfo, readWithRow } from './reader.js';
import { vmdkExtentRow } from './formats/vmdk.js';
import { nodeImageOpener, type ImageOpener } from './source.js';
import type { ChainLayer, ImageChain, ImageFormat, ImageInfo } from './types.js';
import { basename, resolve } from 'node:path';

export interface WalkOptions {
  /** The top layer's format (from the spec); probed when absent. */
  format?: ImageFormat;
  /** When given, every layer and data file must lie (after resolving symlinks) in one of these. */
  allowDirs?: string[];
  /** Most layers a chain may have (default 64). */
  maxDepth?: number;
  /** Stop at a `json:` backing name instead of refusing it (the edge is reported in `unfollowed`). */
  allowJsonBackings?: boolean;
  /** Stop at a protocol backing name (nbd:, http: ...) instead of refusing it. */
  allowProtocolBackings?: boolean;
  /** Where files are opened (tests inject faults here). */
  opener?: ImageOpener;
}

export const DEFAULT_MAX_DEPTH = 64;

/** The next layer to open: where it is, which format to read it as, and who named it. */
interface Step {
  path: string;
  format: ImageFormat | null;
  /** The overlay that names this layer and the name as recorded (null for the top layer). */
  namedBy: { path: string; name: string } | null;
}

interface Walk {
  opts: WalkOptions;
  opener: ImageOpener;
  allowed: string[] | null;
  seen: Map<string, string>;
}

/** Refuses a path outside the allowed directories (after resolving symlinks), naming both. */
async function checkAllowed(w: Walk, path: string, what: string): Promise<void> {
  if (w.allowed === null) return;
  const real = await w.opener.realpath(path);
  if (!isInsideDirs(real, w.allowed)) {
    throw new ImageError('IMAGE_OUTSIDE_ALLOWED_DIRS', `${what} ${path}${real === path ? '' : ` (really ${real})`} lies outside the allowed directories ${w.allowed.join(', ')}`, {
      context: { layer: path, realPath: real, allowDirs: w.allowed },
      suggestions: ['move the image into an allowed directory, or allow its directory (--allow-dir)'],
    });
  }
}

/** Records (dev, ino) and refuses a file already seen in this chain, whatever name it was reached by. */
function checkLoop(w: Walk, id: { dev: number; ino: number }, path: string, what: string): void {
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
function checkName(w: Walk, overlay: string, name: string, what: 'backing file' | 'data file' | 'extent file'): boolean {
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

/** Opens and probes one layer: existence, allowed dirs, loops, then the bounded header read. */
async function probeLayer(w: Walk, step: Step): Promise<Omit<ChainLayer, 'dataFilePath'>> {
  await checkAllowed(w, step.path, 'layer');
  const src = await w.opener.open(step.path);
  try {
    checkLoop(w, src, step.path, 'layer');
    const info = await readImageInfo(src, step.format, basename(step.path));
    return { ...info, path: step.path, dev: src.dev, ino: src.ino, size: src.size };
  } finally {
    await src.close();
  }
}

/** A probed backing layer may not lead further: its own backing or data file would be read under a guessed format. */
function checkProbedLeaf(step: Step, info: ImageInfo): void {
  if (step.namedBy === null || step.format !== null) return;
  if (info.backingFilename === null && info.dataFile === null) return;
  const overlay = step.namedBy.path;
  throw new ImageError('IMAGE_BACKING_FORMAT_UNKNOWN', `${overlay} records no format for its backing file ${step.path}, which probes as ${info.format} and has a ${info.backingFilename !== null ? 'backing' : 'data'} file of its own: refusing to guess further`, {
    context: { layer: overlay, backing: step.path, probedFormat: info.format },
    suggestions: [rebaseHint(overlay, step.namedBy.name, info.format)],
  });
}

/** Resolves and checks an external data file or VMDK extent like a layer (named, allowed, not a loop, present). */
async function checkDataFile(w: Walk, layerPath: string, name: string, what: 'data file' | 'extent file' = 'data file'): Promise<string> {
  checkName(w, layerPath, name, what);
  const path = resolveRecorded(layerPath, name);
  try {
    await checkAllowed(w, path, what);
    checkLoop(w, await w.opener.stat(path), path, what);
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
async function checkExtents(w: Walk, layerPath: string, info: ImageInfo): Promise<{ extentPaths?: string[] }> {
  if (info.extents === undefined) return {};
  const extentPaths: string[] = [];
  for (const e of info.extents) {
    const path = await checkDataFile(w, layerPath, e.file, 'extent file');
    if (e.type === 'SPARSE' || e.type === 'VMFSSPARSE') await probeSparseExtent(w, path);
    extentPaths.push(path);
  }
  return { extentPaths };
}

/** Wraps every refusal so it names the layer it is about. */
function named(err: unknown, step: Step): unknown {
  if (!(err instanceof ImageError)) return err;
  const extra = step.namedBy === null ? {} : { namedBy: step.namedBy.path, recordedName: step.namedBy.name };
  if (err.code === 'IMAGE_NOT_FOUND' && step.namedBy !== null && err.layer === step.path) {
    return new ImageError('IMAGE_NOT_FOUND', `backing file ${step.path} (recorded as "${step.namedBy.name}" in ${step.namedBy.path}) does not exist`, {
      context: { ...err.context, ...extra, layer: err.layer ?? step.path }, cause: err.cause,
    });
  }
  return err.layer === null ? atLayer(err, step.path, extra) : err;
}

/** One layer, fully checked; the step to take next, or null at the bottom. */
async function walkOne(w: Walk, step: Step, layers: ChainLayer[], chain: ImageChain): Promise<Step | null> {
  const info = await probeLayer(w, step);
  checkProbedLeaf(step, info);
  const dataFilePath = info.dataFile === null ? null : await checkDataFile(w, step.path, info.dataFile);
  const extents = await checkExtents(w, step.path, info);
  layers.push({ ...info, dataFilePath, ...extents });
  const name = info.backingFilename;
  if (name === null) return null;
  if (!checkName(w, step.path, name, 'backing file')) {
    chain.unfollowed = { layer: layers.length - 1, name, kind: classifyName(name) === 'json' ? 'json' : 'protocol' };
    return null;
  }
  const max = w.opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const path = resolveRecorded(step.path, name);
  if (layers.length >= max) {
    throw new ImageError('IMAGE_CHAIN_TOO_DEEP', `the chain from ${layers[0]!.path} has more than ${max} layers (${step.path} names yet another backing file, ${path})`, {
      context: { layer: step.path, maxDepth: max }, suggestions: ['flatten the chain: qemu-img convert or qemu-img commit'],
    });
  }
  return { path, format: info.backingFormat, namedBy: { path: step.path, name } };
}

/** Walks the backing chain from `path` (layers[0] = top), refusing per the image policy; every refusal names its layer. */
export async function walkChain(path: string, options: WalkOptions = {}): Promise<ImageChain> {
  const max = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new ImageError('IMAGE_INVALID_OPTION', `walking the chain of ${path}: maxDepth must be a positive integer, not ${String(options.maxDepth)}`, { context: { maxDepth: options.maxDepth } });
  }
  const opener = options.opener ?? nodeImageOpener;
  // A missing allowed directory cannot hold a layer: keep its lexical path, which matches nothing that exists.
  const real = (d: string) => opener.realpath(resolve(d)).catch(() => resolve(d));
  const allowed = options.allowDirs === undefined ? null : await Promise.all(options.allowDirs.map(real));
  const w: Walk = { opts: options, opener, allowed, seen: new Map() };
  const layers: ChainLayer[] = [];
  const chain: ImageChain = { layers };
  let step: Step | null = { path: resolve(path), format: options.format ?? null, namedBy: null };
  while (step !== null) {
    const current: Step = step;
    try {
      step = await walkOne(w, current, layers, chain);
    } catch (err) {
      throw named(err, current);
    }
  }
  return chain;
}
