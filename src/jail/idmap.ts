/**
 * @module jail/idmap: idmapped binds (JailMount.idmap): before the jail starts, an idmapped
 * clone of each such source is attached under a root-owned directory only the jail's gid may
 * search (bwrap binds it as the jail's uid/gid, after the uid drop); teardown detaches and removes them.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from '../sys/index.js';
import { JailError } from './errors.js';
import type { JailSpec } from './spec.js';

/** Where idmapped clones are attached: one directory per jail name (host-wide, like cgroup names; root:<jail gid> 0710), one mount point per bind. */
export const IDMAP_DIR = '/run/warden-idmap';

function dirOf(name: string, base: string): string {
  return join(base, name);
}

/**
 * The spec with every idmapped bind's source replaced by its idmapped clone, files of
 * idmap.uid/gid appearing as `uid`/`gid` (the jail's). A spec without one is returned as is.
 */
export function prepareIdmaps(spec: JailSpec, uid: number, gid: number, base = IDMAP_DIR): JailSpec {
  if (!spec.mounts.some((m) => (m.type === 'bind' || m.type === 'ro-bind') && m.idmap !== undefined)) return spec;
  removeIdmaps(spec.name, base); // a crashed launch's leftovers
  const dir = dirOf(spec.name, base);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(base, 0o755);
  // Only the jail's gid may pass (bwrap binds as the jail's uid/gid): a share readable by all but
  // kept behind its owner's 0700 parent must not become reachable here for every host user.
  chownSync(dir, 0, gid);
  chmodSync(dir, 0o710);
  const native = loadNative();
  const mounts = spec.mounts.map((m, i) => {
    if ((m.type !== 'bind' && m.type !== 'ro-bind') || m.idmap === undefined) return m;
    const at = join(dir, String(i));
    mkdirSync(at, { mode: 0o700 });
    try {
      native.idmapMount(m.source, at, m.idmap.uid, uid, m.idmap.gid, gid, m.type === 'ro-bind');
    } catch (cause) {
      throw new JailError('JAIL_LAUNCH_FAILED', `idmapping ${m.source} (uid ${m.idmap.uid} as ${uid}) for jail "${spec.name}" failed`,
        { cause, context: { jail: spec.name, source: m.source, mount: i }, suggestions: ['idmapped mounts need Linux 5.12+ and a filesystem that supports them (ext4, xfs, btrfs; tmpfs from 6.3)'] });
    }
    const { idmap: _idmap, ...rest } = m;
    return { ...rest, source: at };
  });
  return { ...spec, mounts };
}

/** Detaches and removes jail `name`'s idmapped clones; nothing there is fine (idempotent). */
export function removeIdmaps(name: string, base = IDMAP_DIR): void {
  const dir = dirOf(name, base);
  if (!existsSync(dir)) return;
  const native = loadNative();
  for (const entry of readdirSync(dir)) {
    const at = join(dir, entry);
    for (let k = 0; k < 4; k++) {
      try { native.unmount(at); } catch { break; } // EINVAL: nothing (more) mounted there
    }
    rmdirSync(at);
  }
  rmdirSync(dir);
}
