/** @module qemu/cache: capabilities (and helper programs' views) cached per binary, keyed by path, size and mtime, so a changed binary is probed again; of the QAPI schema only the planner's part. */
import { sha256Hex } from '../sys/sha256.js';
import { NodeHostFiles, type Fs, type HostFiles, type ProcessRunner } from '../sys/index.js';
import { probeQemu } from './probe.js';
import { plannerSchema } from './qapi.js';
import { gatherProgramView, gatherView, viewSources } from './view.js';
import type { ProgramView, QemuCaps } from './types.js';

export interface BinaryStat { size: number; mtimeMs: number }

export interface CapsSource {
  runner: ProcessRunner;
  fs: Fs;
  /** stat() of the binary (a port so tests can change the key without touching a binary). */
  stat: (path: string) => Promise<BinaryStat>;
  cacheDir: string;
  /** Symlink and listing questions for the view facts (default: the real host). */
  files?: HostFiles;
}

/** The cache file of one binary version. */
export function cacheFile(cacheDir: string, binary: string, st: BinaryStat, kind = 'qemu-caps'): string {
  const key = sha256Hex(`${binary}\0${st.size}\0${Math.trunc(st.mtimeMs)}`).slice(0, 24);
  return `${cacheDir}/${kind}-${key}.json`;
}

/** A cached entry is used only with its view, and only while every file the view names is still there (a library upgrade re-probes). */
async function stillValid(caps: QemuCaps, binary: string, files: HostFiles): Promise<boolean> {
  if (caps.binary !== binary || !Array.isArray(caps.devices) || caps.view === undefined) return false;
  const ok = await Promise.all(viewSources(caps.view).map((p) => files.isFile(p)));
  return ok.every(Boolean);
}

/** Caps (with the view facts) from the cache when the binary is unchanged, else probed and stored. A corrupt cache entry is re-probed. */
export async function loadQemuCaps(src: CapsSource, binary: string): Promise<QemuCaps & { cached: boolean }> {
  const file = cacheFile(src.cacheDir, binary, await src.stat(binary));
  const files = src.files ?? new NodeHostFiles();
  if (await src.fs.exists(file)) {
    try {
      const caps = JSON.parse(await src.fs.readFile(file)) as QemuCaps;
      if (await stillValid(caps, binary, files)) {
        // An entry from before the cache kept only the planner's schema is cut down once (the answer is the same).
        if (caps.schema !== undefined && caps.schema.some((e) => e['meta-type'] === 'event')) {
          caps.schema = plannerSchema(caps.schema);
          await src.fs.writeFile(file, JSON.stringify(caps)).catch(() => { /* read-only: cut again next time */ });
        }
        return { ...caps, cached: true };
      }
    } catch { /* fall through: probe again and overwrite */ }
  }
  const caps = await probeQemu(src.runner, binary);
  // Only what the planner's check reads of the QAPI schema: a run parses ~100 KB, not 230 (issue 16).
  if (caps.schema !== undefined) caps.schema = plannerSchema(caps.schema);
  caps.view = await gatherView(src.runner, files, binary);
  try {
    await src.fs.mkdir(src.cacheDir, { recursive: true });
    // Write-then-rename would be nicer; the Fs port has no rename, and a torn file is re-probed above.
    await src.fs.writeFile(file, JSON.stringify(caps));
  } catch {
    // An unwritable cache (a user without a writable $HOME ...) costs a probe next time, not the command.
  }
  return { ...caps, cached: false };
}

/**
 * A helper program's view (passt, swtpm ...: one ldd and a walk of its libraries) from the
 * cache while the binary is unchanged and every file the view names is still there, else
 * gathered and stored: a CLI process (validate, start) no longer runs ldd each time. Null
 * when the program is not installed (nothing is cached then).
 */
export async function loadProgramView(src: CapsSource, binary: string): Promise<ProgramView | null> {
  const files = src.files ?? new NodeHostFiles();
  const st = await src.stat(binary).catch(() => null);
  if (st === null) return gatherProgramView(src.runner, files, binary);
  const file = cacheFile(src.cacheDir, binary, st, 'program-view');
  if (await src.fs.exists(file)) {
    try {
      const view = JSON.parse(await src.fs.readFile(file)) as ProgramView;
      const names = [view.binary, ...view.libraries];
      if (Array.isArray(view.libraries) && (await Promise.all(names.map((f) => files.isFile(f.source)))).every(Boolean)) return view;
    } catch { /* gather again and overwrite */ }
  }
  const view = await gatherProgramView(src.runner, files, binary);
  if (view !== null) {
    try {
      await src.fs.mkdir(src.cacheDir, { recursive: true });
      await src.fs.writeFile(file, JSON.stringify(view));
    } catch {
      // An unwritable cache costs an ldd next time, not the command.
    }
  }
  return view;
}
