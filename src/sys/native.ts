/** @module sys/native: loads the small N-API addon (native/) for the syscalls Node lacks. */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface NativeAddon {
  /** Opens `queues` fds on one TAP device (IFF_TAP|IFF_NO_PI, IFF_VNET_HDR when asked). */
  openTap(name: string, queues: number, vnetHdr: boolean): { name: string; fds: number[] };
  /** One sendmsg carrying `fds` as SCM_RIGHTS; returns bytes sent; throws code EAGAIN when full. */
  sendFds(sockFd: number, data: Uint8Array, fds: number[]): number;
  /** One recvmsg; received fds are O_CLOEXEC. Throws code EAGAIN when nothing waits. */
  recvFds(sockFd: number, maxBytes: number): { data: Buffer; fds: number[] };
  /** An AF_UNIX stream socketpair, both ends O_CLOEXEC. */
  socketpair(): [number, number];
  /** A pipe, [read end, write end], both O_CLOEXEC. */
  pipe(): [number, number];
  /** A pidfd for `pid` (close-on-exec); throws code ESRCH when there is no such process. */
  pidfdOpen(pid: number): number;
  /** Sends signal number `signo` to the pidfd's process; throws code ESRCH once it has been reaped. */
  pidfdSignal(fd: number, signo: number): void;
  /** The interface a TAP or macvtap fd is attached to (TUNGETIFF). */
  tapIfName(fd: number): string;
  closeFd(fd: number): void;
  /**
   * openat2(2) (policy): `flags` gets O_CLOEXEC added; `resolve` is RESOLVE_* bits. Throws with
   * the errno name as code (ENOSYS before Linux 5.6). Optional: an older build lacks it.
   */
  openat2?(dirfd: number, path: string, flags: number, resolve: number): number;
  /**
   * The image prober's check-before-open (native/warden_image.c), each filling `out` with
   * [dev, ino, mode, size, rdev] as Node's Stats holds them: lstat(2) (nothing opened);
   * openat2(AT_FDCWD, path, O_PATH|O_NOFOLLOW|O_CLOEXEC, resolve) + fstat, returning the fd;
   * open of /proc/self/fd/pathFd with flags|O_NONBLOCK|O_NOCTTY|O_CLOEXEC, which closes
   * pathFd in every case, + fstat, returning the new fd. Throw with the errno name as code.
   * Optional: an older build lacks them.
   */
  imageLstat?(path: string, out: Float64Array): void;
  imageHold?(path: string, resolve: number, out: Float64Array): number;
  imageReopen?(pathFd: number, flags: number, out: Float64Array): number;
  /**
   * Names of the host accounts and groups with these ids (getpwuid_r, getgrgid_r on the thread
   * pool): null when there is none, "?ERRNO" when the lookup failed. Optional: an older build lacks it.
   */
  nssNames?(ids: number[]): Promise<{ users: Array<string | null>; groups: Array<string | null> }>;
  /**
   * Every process's ids from /proc/PID/status in one pass on the thread pool: 9 numbers a
   * process (pid, the Uid: line's four uids, the Gid: line's four gids). Optional: an older build lacks it.
   */
  procIds?(): Promise<Uint32Array>;
  /** procIds on the calling thread, or null (nothing read) when /proc lists more than `max` processes. Optional: an older build lacks it. */
  procIdsSync?(max: number): Uint32Array | null;
  /**
   * posix_spawn of `file` (absolute) with `fds[i]` as the child's fd i, a new session, default
   * signal dispositions, an empty signal mask and environment; returns the pid, throws the
   * errno name as code (an exec failure too). `onExit` runs once, on the event loop, after the
   * child was reaped (waitid on its pidfd): the exit code, or null and the signal number. The
   * watch does not keep the loop alive. Optional: an older build lacks it.
   */
  spawnDetached?(file: string, argv: string[], fds: number[], onExit: (code: number | null, signo: number | null) => void): number;
  /** renameat2(a, b, RENAME_EXCHANGE): both names must exist; throws the errno. Optional: an older build lacks it. */
  renameExchange?(a: string, b: string): void;
  /** An anonymous memory file (memfd) holding `data`, sealed against every change; close-on-exec. */
  memfdSealed(name: string, data: Uint8Array): number;
  /** An AF_NETLINK NETLINK_ROUTE socket (O_CLOEXEC, 5 s receive timeout). */
  netlinkOpen(): number;
  /**
   * Sends one netlink message (with NLM_F_ACK or NLM_F_DUMP set) and returns every reply
   * message of its sequence number, through the NLMSG_ERROR or NLMSG_DONE that ends it.
   */
  netlinkTalk(fd: number, request: Uint8Array): Buffer;
  /** SO_PEERCRED of a connected unix socket: the peer's pid, uid and gid at connect time. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** Calls `cb` once, on the event loop, when `fd` turns readable (a pidfd: its process exited). */
  watchReadable(fd: number, cb: () => void): WatchHandle;
  /** Stops a watch that has not fired yet (a no-op once it fired). */
  unwatch(handle: WatchHandle): void;
  /**
   * Attaches at `target` a clone of the mount at `source` (not its submounts) where files of
   * fromUid/fromGid appear as toUid/toGid (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) +
   * move_mount); nosuid, nodev, read-only when asked.
   */
  idmapMount(source: string, target: string, fromUid: number, toUid: number, fromGid: number, toGid: number, readonly: boolean): void;
  /** Lazily detaches the mount at `target` (umount2 MNT_DETACH|UMOUNT_NOFOLLOW); throws EINVAL when none is there. */
  unmount(target: string): void;
  /** [listening fd, connected fd]: a unix socket bound at `path`, listening, one connection queued from the second fd, then `path` removed. */
  listenConnected(path: string): [number, number];
}

/** An opaque handle of watchReadable. */
export type WatchHandle = { readonly __watch: unique symbol };

let cached: NativeAddon | undefined;

/** The addon, built by `npm run build:native` (scripts/setup.sh runs it). */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/sys → repository root is three levels up.
  const path = join(here, '..', '..', '..', 'native', 'build', 'Release', 'warden_native.node');
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (cause) {
    throw new Error(`loading the native addon from ${path} failed; run "npm run setup" to build it`, { cause });
  }
  return cached;
}
