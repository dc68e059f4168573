/** @module jail/paths: pure checks on path strings (absolute, canonical, no `..`) and the names the jailer accepts. */

/** A jail or cgroup name: lower-case letters, digits and dashes, starting with a letter or digit. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Why `p` is not an absolute canonical path, or undefined when it is. Canonical here means
 * spelled canonically: no empty, `.` or `..` component, no trailing slash (symlinks are a
 * host question, answered in validate-host).
 */
export function absolutePathProblem(p: unknown): string | undefined {
  if (typeof p !== 'string' || p.length === 0) return 'must be a non-empty string';
  if (p.includes('\0')) return 'must not contain a NUL byte';
  if (p.length > 4095) return 'is longer than PATH_MAX';
  if (!p.startsWith('/')) return `must be an absolute path, got "${p}"`;
  if (p === '/') return undefined;
  const parts = p.slice(1).split('/');
  if (parts.includes('..')) return `must not contain "..", got "${p}"`;
  if (parts.some((c) => c === '' || c === '.')) return `must be canonical (no "//", "/./" or trailing "/"), got "${p}"`;
  return undefined;
}

/** True when `p` is `dir` or lies beneath it (both canonical absolute paths). */
export function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** The jailer owns these targets: it mounts /proc, builds /dev and places its helper. */
export const RESERVED_TARGETS: readonly string[] = ['/proc', '/dev', '/.warden-exec'];

/** Where the exec helper appears inside every jail. */
export const HELPER_TARGET = '/.warden-exec';
