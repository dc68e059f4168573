/**
 * @module vm/helper-watch: the supervisor's watch on a running VM's helpers (passt, swtpm ...):
 * one pidfd per helper process, so a helper that dies is noticed at once, with no polling.
 */
import type { NativeAddon, WatchHandle } from '../sys/index.js';
import type { HelperRun, ProcId } from './record.js';

interface Watched { handle: WatchHandle; fd: number; helper: HelperRun }

export class HelperWatch {
  private readonly watched = new Map<string, Watched>();
  /** Helpers already reported dead: a record that still names them is not news twice. */
  private readonly dead = new Set<string>();

  /** `alive` tells a live process from a reused pid (pid + start time). */
  constructor(private readonly native: NativeAddon, private readonly alive: (p: ProcId) => Promise<boolean>, private readonly onDeath: (h: HelperRun) => void) {}

  /** Watches exactly these helpers (the current run's); a helper whose pid is already gone is reported at once. */
  follow(helpers: readonly HelperRun[]): void {
    const want = new Map(helpers.map((h) => [key(h), h]));
    for (const [k] of this.watched) if (!want.has(k)) this.drop(k);
    for (const k of this.dead) if (!want.has(k)) this.dead.delete(k);
    for (const [k, h] of want) {
      if (this.watched.has(k) || this.dead.has(k)) continue;
      let fd: number;
      try {
        fd = this.native.pidfdOpen(h.proc.pid);
      } catch {
        this.died(k, h);
        continue;
      }
      const handle = this.native.watchReadable(fd, () => this.died(k, h));
      this.watched.set(k, { handle, fd, helper: h });
      // The pid may already belong to another process (the helper died before the pidfd was opened).
      void this.alive(h.proc).then((yes) => { if (!yes && this.watched.get(k)?.fd === fd) this.died(k, h); });
    }
  }

  /** Stops watching every helper (the run ended). */
  clear(): void {
    for (const k of [...this.watched.keys()]) this.drop(k);
    this.dead.clear();
  }

  private died(k: string, h: HelperRun): void {
    this.drop(k);
    this.dead.add(k);
    this.onDeath(h);
  }

  private drop(k: string): void {
    const w = this.watched.get(k);
    if (w === undefined) return;
    this.watched.delete(k);
    this.native.unwatch(w.handle);
    this.native.closeFd(w.fd);
  }
}

/** A helper's identity across records: its jail and its process (pid + start time survive pid reuse). */
function key(h: HelperRun): string {
  return `${h.jailName}:${h.proc.pid}:${h.proc.startTime}`;
}
