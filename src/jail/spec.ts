/**
 * @module jail/spec: the JailSpec, data only: everything needed to confine one program
 * before it starts. The planner produces it, the jailer executes it; it names no VMM.
 */

/**
 * A filesystem entry in the jail's otherwise empty root. Sources are absolute, canonical, not
 * symlinks, and reachable by the jail's uid (bwrap binds them after the uid drop). Targets are
 * never /, /proc, /dev or /.warden-exec: the jailer builds those.
 */
export type JailMount =
  | { type: 'ro-bind'; source: string; target: string; idmap?: JailIdmap }
  | { type: 'bind'; source: string; target: string; idmap?: JailIdmap }
  | { type: 'symlink'; linkTarget: string; path: string }
  | { type: 'tmpfs'; target: string; sizeBytes?: number }
  | { type: 'dir'; target: string };

/**
 * An idmapped bind: files of this host uid/gid appear (and are created) as the jail's own uid/gid
 * in the bound tree, so a jail reads a directory its owner keeps private (0700) without running
 * as that owner. The jailer attaches an idmapped clone of the source (not its submounts; nosuid,
 * nodev, read-only for ro-bind) where the jail's uid can reach it, and removes it at teardown.
 */
export interface JailIdmap { uid: number; gid: number }

/** A pre-opened fd the program receives. The i-th entry becomes fd 3+i in the program. */
export interface JailFd {
  /** The name the caller uses to hand over the real fd at launch time (e.g. "disk-root-0"). */
  name: string;
  /** Always 3 + the entry's index; stated so argv built from the same data can refer to it. */
  target: number;
}

export interface JailCgroup {
  /** Leaf name of the jail's cgroup (unique per jail); created under the jailer's parent cgroup. */
  name: string;
  /** CPU bandwidth: quota per period, in microseconds (150% → 150000/100000). */
  cpu?: { quotaUs: number; periodUs: number };
  memoryBytes?: number;
  pids?: number;
}

export interface JailRlimits {
  nofile?: number;
  fsize?: number;
  core?: number;
}

export type JailNetwork =
  /** A new, empty network namespace (only lo). */
  | { mode: 'none' }
  /** Join an existing network namespace by path (e.g. /run/netns/NAME). */
  | { mode: 'join'; path: string }
  /** Stay in the caller's namespace (user-mode networking needs no host device; still discouraged). */
  | { mode: 'host' };

export interface JailSpec {
  /** Name of this jail: [a-z0-9][a-z0-9-]{0,62}; used for the cgroup and the lease. */
  name: string;
  /**
   * Identity: an explicit uid/gid (inside the configured range; groups in the range or in the
   * config's allowedGroups), or "lease" to take the next free one from the range (gid = uid).
   */
  identity: { uid: number; gid: number; groups?: number[] } | { lease: true };
  network: JailNetwork;
  mounts: JailMount[];
  /**
   * Device nodes made visible (e.g. /dev/kvm); the jail's /dev holds only these plus null, zero,
   * full, random and urandom. Each must be in the jailer config's allowedDevices.
   */
  devices: string[];
  fds: JailFd[];
  cgroup?: JailCgroup;
  rlimits?: JailRlimits;
  env: Record<string, string>;
  cwd: string;
  /** argv[0] is an absolute path inside the jail's view. */
  argv: string[];
  /**
   * Optional Landlock layer applied just before exec, where the kernel supports it. readOnly
   * paths get execute+read, readWrite all rights; the jailer adds the /dev nodes it creates
   * and the listed devices. Everything else (e.g. /proc) must be listed to stay reachable.
   */
  landlock?: { readOnly: string[]; readWrite: string[] };
  /**
   * Let the program create user namespaces of its own inside the jail (default false: nested
   * ones are disabled). For programs that sandbox themselves further (passt unshares its
   * own namespaces); the capabilities they get there are only over those namespaces.
   */
  nestedUserns?: boolean;
}
