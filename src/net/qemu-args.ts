/**
 * @module net/qemu-args: pure builders of QEMU's JSON -netdev for fds this module opened
 * and for user-mode networking (host forwards bound to loopback unless asked otherwise).
 */

/** A -netdev tap on pre-opened fds (TAP or macvtap); fds are numbers in QEMU's fd table. */
export function tapNetdev(id: string, fds: readonly number[], vhostFds: readonly number[] = []): Record<string, unknown> {
  if (fds.length === 0) throw new RangeError(`netdev ${id}: at least one fd`);
  if (vhostFds.length > 0 && vhostFds.length !== fds.length) throw new RangeError(`netdev ${id}: one vhost fd per queue (${fds.length})`);
  const out: Record<string, unknown> = { type: 'tap', id };
  if (fds.length === 1) out['fd'] = String(fds[0]);
  else out['fds'] = fds.join(':');
  if (vhostFds.length > 0) {
    out['vhost'] = true;
    if (vhostFds.length === 1) out['vhostfd'] = String(vhostFds[0]);
    else out['vhostfds'] = vhostFds.join(':');
  }
  return out;
}

export interface HostForward {
  proto: 'tcp' | 'udp';
  /** Default 127.0.0.1: forwards are reachable from this host only. */
  hostAddr?: string;
  hostPort: number;
  guestAddr?: string;
  guestPort: number;
}

const LOOPBACK_RE = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;

function port(p: number, what: string): string {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new RangeError(`${what} ${p} is not in 1..65535`);
  return String(p);
}

/** QEMU's hostfwd rule text: `tcp:127.0.0.1:8022-:22`. A non-loopback host address needs `allowPublic`. */
export function hostfwdRule(f: HostForward, allowPublic = false): string {
  const addr = f.hostAddr ?? '127.0.0.1';
  if (!allowPublic && !LOOPBACK_RE.test(addr)) throw new RangeError(`host forward on ${addr}: only loopback addresses unless allowed`);
  return `${f.proto}:${addr}:${port(f.hostPort, 'host port')}-${f.guestAddr ?? ''}:${port(f.guestPort, 'guest port')}`;
}

export interface UserNetOptions {
  hostfwd?: readonly HostForward[];
  /** Isolate the guest from the host's network except for the forwards (QEMU `restrict`). */
  restrict?: boolean;
  /** Guest network, e.g. "10.0.2.0/24" (QEMU's default when absent). */
  net?: string;
  allowPublicForwards?: boolean;
}

/** A -netdev user (slirp): no host privileges, no host devices, no undo. */
export function userNetdev(id: string, o: UserNetOptions = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { type: 'user', id };
  if (o.net !== undefined) out['net'] = o.net;
  if (o.restrict !== undefined) out['restrict'] = o.restrict;
  if (o.hostfwd !== undefined && o.hostfwd.length > 0) {
    out['hostfwd'] = o.hostfwd.map((f) => ({ str: hostfwdRule(f, o.allowPublicForwards ?? false) }));
  }
  return out;
}
