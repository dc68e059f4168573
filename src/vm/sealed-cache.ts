/**
 * @module vm/sealed-cache: sealed memfd copies of boot files kept by a long-lived manager and
 * reused by later starts while the file is unchanged, instead of copying the same kernel and
 * initrd (megabytes each) into fresh memory at every start.
 */
import { constants as C, openSync, type BigIntStats } from 'node:fs';
import type { NativeAddon } from '../sys/index.js';

/**
 * A copy is kept only for a file whose ctime is at least this much older than the moment its
 * stat was taken: the kernel stamps ctime from a coarse clock, so a write landing within the
 * same tick as the stat would leave (dev, ino, size, mtime, ctime) unchanged while the content
 * changed ("racy" entries, as git calls them). Such a file is copied again at its next use.
 * Known blind spot (git's too): writes through a shared mapping to a page already dirty do not
 * move mtime/ctime until writeback, so such a writer may see a start boot the older copy; the
 * writer could change the file anyway, so this is staleness, not a way in.
 */
export const RACY_MS = 2000;

/** What the copies may hold in memory together (least recently used copies go first). */
export const SEALED_CACHE_BYTES = 256 * 1024 ** 2;

interface Entry { fd: number; size: bigint; mtimeNs: bigint; ctimeNs: bigint }

/** The identity a reuse must match exactly: the inode and everything a content change moves. */
const same = (e: Entry, st: BigIntStats): boolean => e.size === st.size && e.mtimeNs === st.mtimeNs && e.ctimeNs === st.ctimeNs;

/**
 * A new read-only open file description of a sealed memfd, through /proc/self/fd: what QEMU
 * gets, so every start holds its own fd (closed after the launch) while the cache keeps its own.
 */
export function reopenReadOnly(fd: number): number {
  return openSync(`/proc/self/fd/${fd}`, C.O_RDONLY);
}

export class SealedCopyCache {
  /** By "scope:dev:ino"; the Map's order is the use order (first = least recently used). */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0n;

  constructor(private readonly native: Pick<NativeAddon, 'memfdSealed' | 'closeFd'>, private readonly capBytes = SEALED_CACHE_BYTES, private readonly racyMs = RACY_MS) {}

  /**
   * A read-only fd of a sealed copy of the file whose stat (taken at `statAt`, ms since the
   * epoch) is `st`: the kept copy when its file is unchanged, else a fresh one from `read()`
   * (kept when the file is old enough and fits; the older copy of that inode is dropped).
   * `scope` names whose check opened the file (the VM owner's uid): copies are never shared
   * across owners, because (dev, ino, size, mtime, ctime) is forgeable once a device number is
   * reused (a loop, FUSE or removable mount unmounted and another mounted in its place), and
   * a collision must reach only the colliding owner's own copies.
   */
  take(scope: string, name: string, st: BigIntStats, statAt: number, read: () => Buffer): number {
    const key = `${scope}:${st.dev}:${st.ino}`;
    const kept = this.entries.get(key);
    if (kept !== undefined && same(kept, st)) {
      this.entries.delete(key);
      this.entries.set(key, kept);
      return reopenReadOnly(kept.fd);
    }
    if (kept !== undefined) this.drop(key, kept);
    const fd = this.native.memfdSealed(`warden-${name}`, read());
    const keep = st.ctimeNs < BigInt(statAt - this.racyMs) * 1_000_000n && st.size <= BigInt(this.capBytes);
    try {
      return reopenReadOnly(fd);
    } finally {
      if (!keep) this.native.closeFd(fd);
      else {
        this.entries.set(key, { fd, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs });
        this.bytes += st.size;
        for (const [k, e] of this.entries) {
          if (this.bytes <= BigInt(this.capBytes)) break;
          this.drop(k, e);
        }
      }
    }
  }

  /** How many copies and bytes are kept (tests, inspect). */
  get size(): { copies: number; bytes: number } {
    return { copies: this.entries.size, bytes: Number(this.bytes) };
  }

  /** Closes every kept copy (a copy a running QEMU holds lives on in QEMU). */
  clear(): void {
    for (const [k, e] of this.entries) this.drop(k, e);
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.size;
    try { this.native.closeFd(e.fd); } catch { /* closed already */ }
  }
}
