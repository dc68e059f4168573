/**
 * @module image/confine: the one entry point every caller that walks a disk's chain uses
 * (validate, plan, start, the facts gatherer, hot-plug, the API): the chain policy built
 * from the disk's spec and the host policy, and the walk under it. Image headers choose
 * nothing: every layer, data file and extent must lie in an allowed place, devices are
 * used only when the spec names them, and nothing is opened before it is checked.
 */
import { dirname, resolve } from 'node:path';
import { ownerAccessCheck, type Owner } from './access.js';
import { walkChain, type WalkOptions } from './chain.js';
import { ImageError } from './errors.js';
import { DEFAULT_POLICY_FILE, type HostPolicy } from './host-policy.js';
import { resolveTarget, type FileKind } from './open.js';
import type { ImageOpener } from './source.js';
import type { ImageChain, ImageFormat } from './types.js';

/** The fields of a spec disk the policy reads (src/spec DiskSchema). */
export interface DiskPlace {
  /** Where the disk is in the spec ("disks[0]"), for messages. */
  from?: string | undefined;
  image: string;
  format?: ImageFormat | string | undefined;
  allowDirs?: readonly string[] | undefined;
  dataFile?: string | undefined;
  readOnly?: boolean | undefined;
  media?: string | undefined;
}

/** Where one disk's chain may lead and what it may open. */
export interface ChainPolicy {
  allowDirs: string[];
  /** Why each directory is allowed (same order). */
  allowDirsWhy: string[];
  /** Data files allowed wherever they lie (the spec's dataFile). */
  dataFiles: string[];
  /** The only devices that may be a layer: the disk's own image when it is one. */
  devices: string[];
  /** QEMU gets the top layer (and its data file) writable. */
  writable: boolean;
  /** Whose access is checked: read for every file, read and write for writable ones (null: the caller is root or owns everything it can open). */
  owner: Owner | null;
  allowHint: string;
}

/**
 * The policy for one disk (pure). `top` is what the spec's image path resolves to: its
 * directory is allowed (the spec names it), unless the image is a device (its directory,
 * /dev, is not a place images lead into).
 */
export function chainPolicy(disk: DiskPlace, host: HostPolicy, top: { realPath: string; kind: FileKind } | null, owner: Owner | null = null): ChainPolicy {
  const from = disk.from ?? 'the disk';
  const dirs: Array<[string, string]> = [];
  const isDevice = top !== null && (top.kind === 'block' || top.kind === 'char');
  if (!isDevice) {
    dirs.push([dirname(resolve(disk.image)), 'the top image\'s directory']);
    if (top !== null && dirname(top.realPath) !== dirname(resolve(disk.image))) dirs.push([dirname(top.realPath), 'the top image\'s real directory']);
  }
  for (const d of disk.allowDirs ?? []) dirs.push([resolve(d), disk.from === undefined ? '--allow-dir' : `${from}.allowDirs`]);
  for (const d of host.imageDirs) dirs.push([d, `imageDirs in ${host.file ?? DEFAULT_POLICY_FILE}`]);
  const writable = disk.media !== 'cdrom' && disk.readOnly !== true;
  return {
    allowDirs: dirs.map(([d]) => d), allowDirsWhy: dirs.map(([, why]) => why),
    dataFiles: disk.dataFile === undefined ? [] : [resolve(disk.dataFile)],
    devices: isDevice ? [resolve(disk.image)] : [],
    writable, owner: owner !== null && owner.uid !== 0 ? owner : null,
    allowHint: `allow its directory: ${disk.from === undefined ? '--allow-dir' : `${from}.allowDirs in the spec`}, or imageDirs in the host policy ${host.file ?? DEFAULT_POLICY_FILE} ($WARDEN_POLICY)`,
  };
}

/** The walker's options for a policy. */
export function walkOptionsFor(p: ChainPolicy, format: ImageFormat | undefined): WalkOptions {
  return {
    ...(format === undefined ? {} : { format }),
    allowDirs: p.allowDirs, allowDirsWhy: p.allowDirsWhy, dataFiles: p.dataFiles, devices: p.devices,
    allowHint: p.allowHint, writableTop: p.writable,
    ...(p.owner === null ? {} : { accessCheck: ownerAccessCheck(p.owner) }),
  };
}

export interface ConfinedWalk {
  /** Whose access is checked (read for every file, write too for writable ones); default: the caller (root: nobody is checked). */
  owner?: Owner | null;
  opener?: ImageOpener;
  maxDepth?: number;
  allowJsonBackings?: boolean;
  allowProtocolBackings?: boolean;
}

/** The owner the CLI acts for: its caller (root may open everything, so nothing is checked). */
export function callerOwner(): Owner | null {
  const uid = process.geteuid?.() ?? 0;
  return uid === 0 ? null : { uid, gids: process.getgroups?.() ?? [] };
}

/** Walks a disk's chain confined by its policy; refusals are ImageErrors (exit 3) naming the layer, the path and the fix. */
export async function walkChainConfined(disk: DiskPlace, host: HostPolicy, o: ConfinedWalk = {}): Promise<ImageChain> {
  let top: { realPath: string; kind: FileKind } | null = null;
  try { top = resolveTarget(resolve(disk.image)); } catch (err) {
    if (!(err instanceof ImageError)) throw err; // a missing image is reported by the walk itself, with its layer
  }
  const policy = chainPolicy(disk, host, top, o.owner === undefined ? callerOwner() : o.owner);
  const options = walkOptionsFor(policy, disk.format as ImageFormat | undefined);
  const { owner: _owner, ...rest } = o;
  return walkChain(disk.image, { ...options, ...rest });
}

/** Every file of these chains QEMU will be given (layers, data files, extents) and which inode was checked: the open step must find the same. */
export function chainFiles(chains: Iterable<ImageChain>): Map<string, { dev: number; ino: number }> {
  const out = new Map<string, { dev: number; ino: number }>();
  for (const ch of chains) {
    for (const l of ch.layers) {
      out.set(l.path, { dev: l.dev, ino: l.ino });
      if (l.dataFilePath !== null && l.dataFileId !== undefined) out.set(l.dataFilePath, l.dataFileId);
      l.extentPaths?.forEach((p, i) => { const id = l.extentIds?.[i]; if (id !== undefined) out.set(p, id); });
    }
  }
  return out;
}
