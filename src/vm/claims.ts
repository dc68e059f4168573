/** @module vm/claims: the one-writer rule for disk images across VMs, by (dev, ino) of every chain layer. Pure. */
import type { ImageChain } from '../image/index.js';
import type { DiskClaim } from './record.js';
import type { SpecView } from './ports.js';

/** The layers a VM holds: the top layer writable unless the disk is read-only or a cdrom; backing layers read-only. */
export function claimsFor(spec: SpecView, chains: Record<string, ImageChain>): DiskClaim[] {
  return spec.disks.flatMap((d) => (chains[d.name]?.layers ?? []).map((l, i) => ({
    path: l.path, dev: l.dev, ino: l.ino, writable: i === 0 && !d.readOnly && d.media !== 'cdrom',
  })));
}

export interface ClaimConflict {
  mine: DiskClaim;
  other: string;
  theirs: DiskClaim;
}

/** The first layer that another VM holds in a way that conflicts (either side writes it). */
export function findConflict(mine: readonly DiskClaim[], others: ReadonlyArray<{ name: string; disks: readonly DiskClaim[] }>): ClaimConflict | null {
  for (const o of others) {
    for (const theirs of o.disks) {
      const m = mine.find((c) => c.dev === theirs.dev && c.ino === theirs.ino && (c.writable || theirs.writable));
      if (m !== undefined) return { mine: m, other: o.name, theirs };
    }
  }
  return null;
}
