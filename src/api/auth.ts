/**
 * @module api/auth: who is calling, from the unix socket's peer credentials (SO_PEERCRED),
 * and what they may do: root and members of `warden-admin` see and do everything; other
 * members of `warden` see and act on the VMs they own (the uid that created them); QMP
 * passthrough is for admins only. Group membership is /etc/group's, for the peer's uid.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { loadNative } from '../sys/index.js';
import type { Requestor } from '../vm/index.js';
import { ApiError } from './errors.js';

export const USER_GROUP = 'warden';
export const ADMIN_GROUP = 'warden-admin';

export interface Caller extends Requestor {
  admin: boolean;
  /** Member of `warden` (or admin): may use the API at all. */
  member: boolean;
  groups: number[];
}

export type Permission = 'vm:read' | 'vm:lifecycle' | 'vm:console' | 'vm:qmp' | 'host:read';

/** The gid of a group in /etc/group, or null. */
export function groupGid(name: string, etcGroup = '/etc/group'): number | null {
  try {
    for (const line of readFileSync(etcGroup, 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined) return Number(gid);
    }
  } catch { /* no group file */ }
  return null;
}

/**
 * The groups of `uid`: its gid at connect time plus the groups /etc/group lists its user
 * name in. Not the peer pid's /proc status: that pid may belong to another process by now
 * (a client can pass its connection on and exit), and SO_PEERCRED's uid is what counts.
 */
export function groupsOf(uid: number, gid: number, etc = '/etc'): number[] {
  const read = (f: string): string[] => { try { return readFileSync(`${etc}/${f}`, 'utf8').split('\n'); } catch { return []; } };
  const user = read('passwd').map((l) => l.split(':')).find((f) => f[2] === String(uid))?.[0];
  const out = new Set([gid]);
  if (user !== undefined) {
    for (const f of read('group').map((l) => l.split(':'))) {
      if (f.length >= 4 && (f[3] ?? '').split(',').includes(user)) out.add(Number(f[2]));
    }
  }
  return [...out];
}

const cache = new WeakMap<Socket, Caller>();

/** The caller on this connection (read once per connection: SO_PEERCRED is fixed at connect). */
export function callerOf(socket: Socket): Caller {
  const hit = cache.get(socket);
  if (hit !== undefined) return hit;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new ApiError('AUTH_NO_CREDENTIALS', 'the caller cannot be identified: the API is served on a unix socket only');
  const cred = loadNative().peerCred(fd);
  const groups = groupsOf(cred.uid, cred.gid);
  const admin = cred.uid === 0 || inGroup(groups, ADMIN_GROUP);
  const c: Caller = { ...cred, groups, admin, member: admin || inGroup(groups, USER_GROUP) };
  cache.set(socket, c);
  return c;
}

function inGroup(groups: readonly number[], name: string): boolean {
  const gid = groupGid(name);
  return gid !== null && groups.includes(gid);
}

/** Throws AUTH_FORBIDDEN unless `c` may use `perm` on a VM owned by `owner` (undefined: a host-wide permission). */
export function authorize(c: Caller, perm: Permission, vm?: { name: string; owner?: number | undefined }): void {
  if (c.admin) return;
  if (!c.member) throw new ApiError('AUTH_FORBIDDEN', `uid ${c.uid} is not a member of the ${USER_GROUP} group`, { context: { uid: c.uid }, suggestions: [`add the user to ${USER_GROUP}: usermod -aG ${USER_GROUP} USER`] });
  if (perm === 'vm:qmp') throw new ApiError('AUTH_FORBIDDEN', `QMP passthrough is for admins (root or ${ADMIN_GROUP}); uid ${c.uid} is not one`, { context: { uid: c.uid, permission: perm } });
  if (vm !== undefined && vm.owner !== c.uid) {
    throw new ApiError('AUTH_FORBIDDEN', `uid ${c.uid} may not ${perm === 'vm:read' ? 'see' : 'act on'} VM ${vm.name}: it belongs to uid ${vm.owner ?? 0}`, { context: { uid: c.uid, vm: vm.name, permission: perm } });
  }
}

/** Whether `c` sees a VM owned by `owner` (lists and events are filtered with it). */
export function canSee(c: Caller, owner: number | undefined): boolean {
  return c.admin || (c.member && owner === c.uid);
}
