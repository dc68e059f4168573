/** @module image/policy: the pure rules of the image policy: how a recorded name is classified and resolved, and where a chain may lead. */
import { dirname, isAbsolute, resolve, sep } from 'node:path';

export type NameKind = 'file' | 'json' | 'protocol';

/**
 * How QEMU would read a recorded backing or data file name: `json:{...}` is a set of
 * driver options, a colon before any slash names a protocol (nbd:, http:, ...), anything
 * else is a file (relative names resolve against the overlay's directory).
 */
export function classifyName(name: string): NameKind {
  if (name.startsWith('json:')) return 'json';
  const stop = name.search(/[:/]/);
  return stop >= 0 && name[stop] === ':' ? 'protocol' : 'file';
}

/** The protocol of a protocol name ("nbd" for "nbd://host/export"). */
export function protocolOf(name: string): string {
  return name.slice(0, name.indexOf(':'));
}

/** A recorded name resolved as QEMU resolves it: against the directory of the overlay's path as opened. */
export function resolveRecorded(overlayPath: string, name: string): string {
  return isAbsolute(name) ? resolve(name) : resolve(dirname(overlayPath), name);
}

/** True when `real` (a realpath) is one of `dirs` (realpaths) or lies below one. */
export function isInsideDirs(real: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => real === d || real.startsWith(d.endsWith(sep) ? d : d + sep));
}

/** The command that records a backing format in an overlay, for refusals that need one. */
export function rebaseHint(overlay: string, backingName: string, format: string): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return `record the backing format in the overlay: qemu-img rebase -u -F ${format} -b ${q(backingName)} ${q(overlay)}`;
}
