/** @module image/chain: the backing-chain walker: follows backing edges from the top layer under the image policy, one bounded probe per layer. */
import { checkAllowed, checkDataFile, checkExtents, checkLoop, checkName, guardFor, type Naming, type Walk } from './checks.js';
import { ImageError, atLayer } from './errors.js';
import { classifyName, rebaseHint, resolveRecorded } from './policy.js';
import { readImageInfo } from './reader.js';
import { nodeImageOpener, type ImageOpener } from './source.js';
import type { Target } from './open.js';
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
  /** Why each of allowDirs is allowed (same order), named in refusals ("the top image's directory", "disks[0].allowDirs" ...). */
  allowDirsWhy?: string[];
  /** External data files allowed wherever they lie (the spec names them); others must lie in allowDirs. */
  dataFiles?: string[];
  /**
   * When given, a layer that is a block or character device is refused unless it is the
   * top layer and one of these (the spec's disk is that device). Absent: block devices pass.
   */
  devices?: string[];
  /** How a refused directory is allowed, in the caller's terms (default: the --allow-dir flag). */
  allowHint?: string;
  /** Whether QEMU gets the top layer (and its data file) writable: those also pass `writableCheck`. */
  writableTop?: boolean;
  /** Refuses (throws) a file QEMU would get writable; runs on the resolved name before it is opened. */
  writableCheck?: (t: Target, what: string) => void;
  /** Refuses (throws) any file the walk would open or hand on (`writable`: QEMU gets it read-write); runs on the resolved name before it is opened. */
  accessCheck?: (t: Target, what: string, writable: boolean) => void;
}

export const DEFAULT_MAX_DEPTH = 64;

/** The next layer to open: where it is, which format to read it as, and who named it. */
interface Step {
  path: string;
  format: ImageFormat | null;
  /** The overlay that names this layer and the name as recorded (null for the top layer). */
  namedBy: { path: string; name: string } | null;
}

/** Opens and probes one layer: existence, allowed dirs, loops, then the bounded header read. */
async function probeLayer(w: Walk, step: Step, n: Naming): Promise<Omit<ChainLayer, 'dataFilePath'>> {
  const src = await w.opener.open(step.path, { realPath: true, guard: guardFor(w, n) });
  try {
    if (!(n.top && w.devices?.includes(src.realPath ?? '') === true)) checkAllowed(w, step.path, src.realPath, n);
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

/** Wraps every refusal so it names the layer it is about. */
function named(err: unknown, step: Step): unknown {
  if (!(err instanceof ImageError)) return err;
  const extra = step.namedBy === null ? {} : { namedBy: step.namedBy.path, recordedName: step.namedBy.name };
  if (err.code === 'IMAGE_NOT_FOUND' && step.namedBy !== null && err.layer === step.path) {
    return new ImageError('IMAGE_NOT_FOUND', `backing file ${step.path} (recorded as "${step.namedBy.name}" in ${step.namedBy.path}) does not exist`, {
      context: { ...err.context, ...extra, layer: err.layer ?? step.path }, cause: err.cause,
      suggestions: [`restore ${step.path}, or point the overlay at the right file: qemu-img rebase -u -b NEW-BACKING -F FORMAT ${step.namedBy.path}`],
    });
  }
  return err.layer === null ? atLayer(err, step.path, extra) : err;
}

/** One layer, fully checked; the step to take next, or null at the bottom. */
async function walkOne(w: Walk, step: Step, layers: ChainLayer[], chain: ImageChain): Promise<Step | null> {
  const top = step.namedBy === null;
  const writable = top && w.writableTop === true;
  const info = await probeLayer(w, step, { what: top ? 'image' : 'backing file', namedBy: step.namedBy, top, writable });
  checkProbedLeaf(step, info);
  const data = info.dataFile === null ? null : await checkDataFile(w, step.path, info.dataFile, 'data file', writable);
  const extents = await checkExtents(w, step.path, info, writable);
  layers.push({ ...info, dataFilePath: data?.path ?? null, ...(data === null ? {} : { dataFileId: data.id }), ...extents });
  const name = info.backingFilename;
  if (name === null) return null;
  if (!checkName(w, step.path, name, 'backing file')) {
    chain.unfollowed = { layer: layers.length - 1, name, kind: classifyName(name) === 'json' ? 'json' : 'protocol' };
    return null;
  }
  const max = w.maxDepth;
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
  const w: Walk = {
    opts: options, opener, allowed, seen: new Map(), maxDepth: max,
    dataFiles: await Promise.all((options.dataFiles ?? []).map(real)),
    devices: options.devices === undefined ? null : await Promise.all(options.devices.map(real)),
    allowHint: options.allowHint ?? 'allow its directory (--allow-dir)',
    ...(options.allowDirsWhy === undefined ? {} : { allowedWhy: options.allowDirsWhy }),
    ...(options.writableTop === undefined ? {} : { writableTop: options.writableTop }),
    ...(options.writableCheck === undefined ? {} : { writableCheck: options.writableCheck }),
    ...(options.accessCheck === undefined ? {} : { accessCheck: options.accessCheck }),
  };
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
