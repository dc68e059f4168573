/** @module jail/config: the jailer's host configuration (uid range, state dirs, tools) and its defaults. */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface JailerConfig {
  /** Lease store and per-jail records (leases.json, its lock). Root-owned, 0700. */
  stateDir: string;
  /** Per-jail runtime files (the exit-status file bwrap writes). */
  runtimeDir: string;
  /** uids/gids leased to jails: first..first+count-1. A spec's explicit uid must lie inside too. */
  uidRange: { first: number; count: number };
  /** Supplementary gids a spec may list besides the leased range (e.g. the kvm group). */
  allowedGroups: number[];
  /** Device nodes a spec may list; anything else is refused. */
  allowedDevices: string[];
  /** Jail cgroups are created as <hierarchy>/<cgroupParent>/<name>; the parent is made on demand and removed with its last jail. */
  cgroupParent: string;
  /** Which cgroup version to use: 'auto' picks v2 when it carries memory and pids, else v1. */
  cgroupVersion: 'auto' | 1 | 2;
  /** The mount table read to find cgroup hierarchies. */
  mountsFile: string;
  bwrapPath: string;
  setprivPath: string;
  /** The static exec helper built from native/warden-exec.c. */
  helperPath: string;
  /** Refuse to start when the spec asks for Landlock and the kernel lacks it (default: apply where available). */
  landlockRequired: boolean;
}

/** The helper next to the build: dist/src/jail → repository root is three levels up. */
export function defaultHelperPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here, '..', '..', '..', 'native', 'build', 'warden-exec');
}

/** Device nodes a VMM-like program may reasonably need; a deployment narrows or widens this. */
export const DEFAULT_ALLOWED_DEVICES: readonly string[] = [
  '/dev/kvm', '/dev/net/tun', '/dev/vhost-net', '/dev/vhost-vsock', '/dev/vfio/vfio',
  '/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom',
];

export function defaultJailerConfig(overrides: Partial<JailerConfig> = {}): JailerConfig {
  return {
    stateDir: '/var/lib/warden/jail',
    runtimeDir: '/run/warden/jail',
    uidRange: { first: 200000, count: 10000 },
    allowedGroups: [],
    allowedDevices: [...DEFAULT_ALLOWED_DEVICES],
    cgroupParent: 'warden',
    cgroupVersion: 'auto',
    mountsFile: '/proc/self/mounts',
    bwrapPath: '/usr/bin/bwrap',
    setprivPath: '/usr/bin/setpriv',
    helperPath: defaultHelperPath(),
    landlockRequired: false,
    ...overrides,
  };
}
