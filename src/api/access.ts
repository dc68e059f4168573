/**
 * @module api/access: the daemon opens files as root on behalf of callers who are not, so
 * before it starts a VM for a caller who is not an admin it checks, as an early error, that
 * the caller could open every file the VM would get (each layer of each disk's chain, data
 * files, extents, kernel, initrd) themselves, with the access QEMU gets; the start and
 * hot-plug jobs check again, from the record's owner, on what they open. Mode bits of the file and of each directory
 * above it decide (src/image/access); what fails is IMAGE_OWNER_DENIED naming the file.
 */
import { realpathSync } from 'node:fs';
import { ApiError } from './errors.js';
import { ImageError, loadHostPolicy, ownerDenial, walkChainConfined, type Owner } from '../image/index.js';

/** Network types that change the host (TAPs on bridges, OVS ports, macvtap on a link): admins only. */
const HOST_NETWORKS = ['bridge', 'ovs', 'macvtap'];

/**
 * What a caller who is not an admin may not put in a spec: NICs plugged into the host's
 * bridges, OVS or links (the daemon would make them as root). User networking is theirs.
 */
export function checkCallerSpec(spec: Record<string, unknown>, uid: number): void {
  const nets = (spec['networks'] ?? []) as Array<{ name?: string; type?: string }>;
  const bad = nets.filter((n) => HOST_NETWORKS.includes(String(n.type)));
  if (bad.length === 0) return;
  throw new ApiError('AUTH_FORBIDDEN', `uid ${uid} may not plug a VM into host networking (${bad.map((n) => `${n.name}: ${n.type}`).join(', ')}): bridge, ovs and macvtap NICs are for admins`, {
    context: { uid, networks: bad.map((n) => n.name) }, suggestions: ['use type: user (with forwards), or ask an admin (root or warden-admin)'],
  });
}

interface SpecFiles {
  disks?: Array<{ name?: string; image: string; format?: string; readOnly?: boolean; allowDirs?: string[]; dataFile?: string; media?: string }>;
  boot?: { kernel?: string; initrd?: string };
}

function deny(path: string, who: Owner, write: boolean, what: string): void {
  let real = path;
  try { real = realpathSync(path); } catch { /* the start itself reports a missing file */ return; }
  const why = ownerDenial(real, who, write);
  if (why === null) return;
  throw new ImageError('IMAGE_OWNER_DENIED', `${what} ${path} would be opened ${write ? 'read-write' : 'read-only'} by the daemon for uid ${who.uid}, but ${why}; the VM was not started`, {
    context: { path, realPath: real, uid: who.uid, gids: who.gids },
    suggestions: ['give your user access to the file, or ask an admin (root or warden-admin) to start the VM'],
  });
}

/**
 * Throws IMAGE_OWNER_DENIED unless `who` could open every file of `spec` themselves. Root
 * passes. Only an early, friendly error at request time: what binds is the same owner check
 * on the walk the start or hot-plug job opens from (vm/facts, vm/hotplug, vm/boot-fds), made
 * from the VM record's owner, so a file swapped after this check is refused there.
 */
export async function checkCallerFiles(spec: Record<string, unknown>, who: Owner): Promise<void> {
  if (who.uid === 0) return;
  const s = spec as SpecFiles;
  for (const [key, path] of Object.entries(s.boot ?? {})) if (typeof path === 'string') deny(path, who, false, `boot.${key}`);
  const host = loadHostPolicy();
  // The confined walk with an owner checks read access to every layer, data file and extent, and write access to a writable top.
  for (const [i, d] of (s.disks ?? []).entries()) await walkChainConfined({ ...d, from: `disks[${i}]` }, host, { owner: who });
}
