/**
 * @module shim/names: where the shim keeps things and what it calls them, derived from
 * containerd's socket address alone so that `start`, the server and `delete` (run after a
 * shim died) agree without any other state. Pure.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';

export interface ShimPaths {
  /** One directory per containerd instance: the server's socket and log, and the VM state root. */
  dir: string;
  socket: string;
  log: string;
  /** warden's state root for the VMs of this containerd (vms/NAME/...). */
  stateRoot: string;
}

/**
 * Next to containerd's socket (`/run/containerd/warden` for the default one): short enough for
 * unix socket paths below it, private to that containerd, gone with /run at boot.
 * WARDEN_SHIM_DIR overrides it.
 */
export function shimPaths(containerdAddress: string, override: string | undefined = process.env['WARDEN_SHIM_DIR']): ShimPaths {
  const dir = override !== undefined && override !== '' ? override : join(dirname(containerdAddress.replace(/^unix:\/\//, '')), 'warden');
  return { dir, socket: join(dir, 'shim.sock'), log: join(dir, 'shim.log'), stateRoot: dir };
}

/**
 * The warden VM name of containerd task `id` in namespace `ns`: readable, host-unique (VM
 * names become cgroup and jail names) and valid as a warden name ([a-z0-9][a-z0-9-]{0,62}).
 */
export function vmNameFor(ns: string, id: string): string {
  const readable = id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 24);
  const hash = createHash('sha256').update(`${ns}\0${id}`).digest('hex').slice(0, 8);
  return `c-${readable === '' ? '' : `${readable}-`}${hash}`;
}

/** Map key of a task: ids are unique per namespace only. */
export function taskKey(ns: string, id: string): string {
  return `${ns}/${id}`;
}
