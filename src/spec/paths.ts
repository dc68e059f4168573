/** @module spec/paths: resolving the spec's relative host paths against the spec file's directory (pure string work). */
import { isAbsolute, resolve } from 'node:path';
import type { Spec } from './schema.js';

function abs(baseDir: string, p: string): string {
  return isAbsolute(p) ? resolve(p) : resolve(baseDir, p);
}

/** A copy of the spec with every host path absolute. */
export function resolveSpecPaths(spec: Spec, baseDir: string): Spec {
  const out: Spec = { ...spec, disks: spec.disks.map((d) => {
    const disk = { ...d, image: abs(baseDir, d.image) };
    if (d.allowDirs !== undefined) disk.allowDirs = d.allowDirs.map((p) => abs(baseDir, p));
    if (d.dataFile !== undefined) disk.dataFile = abs(baseDir, d.dataFile);
    return disk;
  }) };
  if (spec.boot !== undefined) {
    const boot = { ...spec.boot, kernel: abs(baseDir, spec.boot.kernel) };
    if (spec.boot.initrd !== undefined) boot.initrd = abs(baseDir, spec.boot.initrd);
    out.boot = boot;
  }
  if (spec.shares !== undefined) out.shares = spec.shares.map((sh) => ({ ...sh, path: abs(baseDir, sh.path) }));
  return out;
}
