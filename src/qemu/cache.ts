/** @module qemu/cache: capabilities cached per binary, keyed by path, size and mtime, so a changed binary is probed again. */
import { createHash } from 'node:crypto';
import type { Fs, ProcessRunner } from '../sys/index.js';
import { probeQemu } from './probe.js';
import type { QemuCaps } from './types.js';

export interface BinaryStat { size: number; mtimeMs: number }

export interface CapsSource {
  runner: ProcessRunner;
  fs: Fs;
  /** stat() of the binary (a port so tests can change the key without touching a binary). */
  stat: (path: string) => Promise<BinaryStat>;
  cacheDir: string;
}

/** The cache file of one binary version. */
export function cacheFile(cacheDir: string, binary: string, st: BinaryStat): string {
  const key = createHash('sha256').update(`${binary}\0${st.size}\0${Math.trunc(st.mtimeMs)}`).digest('hex').slice(0, 24);
  return `${cacheDir}/qemu-caps-${key}.json`;
}

/** Caps from the cache when the binary is unchanged, else probed and stored. A corrupt cache entry is re-probed. */
export async function loadQemuCaps(src: CapsSource, binary: string): Promise<QemuCaps & { cached: boolean }> {
  const file = cacheFile(src.cacheDir, binary, await src.stat(binary));
  if (await src.fs.exists(file)) {
    try {
      const caps = JSON.parse(await src.fs.readFile(file)) as QemuCaps;
      if (caps.binary === binary && Array.isArray(caps.devices)) return { ...caps, cached: true };
    } catch { /* fall through: probe again and overwrite */ }
  }
  const caps = await probeQemu(src.runner, binary);
  try {
    await src.fs.mkdir(src.cacheDir, { recursive: true });
    // Write-then-rename would be nicer; the Fs port has no rename, and a torn file is re-probed above.
    await src.fs.writeFile(file, JSON.stringify(caps));
  } catch {
    // An unwritable cache (a user without a writable $HOME ...) costs a probe next time, not the command.
  }
  return { ...caps, cached: false };
}
