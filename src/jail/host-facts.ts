/** @module jail/host-facts: facts gathered before launch: device numbers, tool presence, the fds the caller hands over. */
import { accessSync, constants, statSync } from 'node:fs';
import type { JailSpec } from './spec.js';
import type { JailerConfig } from './config.js';
import type { DeviceNumber } from './cgroup-plan.js';
import { BASE_DEVICES } from './argv.js';
import { JailError } from './errors.js';

/** major/minor of every node the jail's /dev will hold, for the devices controller. */
export function deviceNumbers(spec: JailSpec): DeviceNumber[] {
  return [...new Set([...BASE_DEVICES, ...spec.devices])].map((path) => {
    const st = statSync(path);
    const rdev = st.rdev;
    // glibc's encoding: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31.
    const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
    const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
    return { path, kind: st.isBlockDevice() ? 'b' : 'c', major, minor };
  });
}

/** Throws JAIL_HELPER_MISSING naming the first tool that is absent or not executable. */
export function checkTools(config: JailerConfig): void {
  for (const [what, path, hint] of [
    ['the exec helper', config.helperPath, 'run "npm run setup" (it builds native/build/warden-exec)'],
    ['bwrap', config.bwrapPath, 'apt-get install bubblewrap'],
    ['setpriv', config.setprivPath, 'apt-get install util-linux'],
  ] as const) {
    try { accessSync(path, constants.X_OK); } catch (cause) {
      throw new JailError('JAIL_HELPER_MISSING', `${what} is missing or not executable at ${path}`, { cause, context: { path }, suggestions: [hint] });
    }
  }
}

/** The caller's fds in the spec's order (the i-th becomes fd 3+i); every listed name must be given, and nothing else. */
export function orderedFds(spec: JailSpec, fds: ReadonlyMap<string, number>): number[] {
  const missing = spec.fds.filter((f) => !fds.has(f.name)).map((f) => f.name);
  const extra = [...fds.keys()].filter((n) => !spec.fds.some((f) => f.name === n));
  if (missing.length > 0 || extra.length > 0) {
    throw new JailError('JAIL_INVALID_SPEC', `the fds handed to jail "${spec.name}" do not match its spec (missing: ${missing.join(', ') || 'none'}; not in the spec: ${extra.join(', ') || 'none'})`,
      { context: { jail: spec.name, missing, extra, issues: [...missing.map((n) => ({ path: 'fds', message: `no fd given for "${n}"` }))] } });
  }
  return spec.fds.map((f) => fds.get(f.name)!);
}
