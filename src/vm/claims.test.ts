import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimsFor, findConflict } from './claims.js';
import type { ImageChain } from '../image/index.js';

const layer = (path: string, ino: number) => ({ path, dev: 1, ino } as unknown as ImageChain['layers'][number]);

test('the top layer is claimed writable, backing layers and read-only disks read-only', () => {
  const spec = { name: 'a', accel: 'tcg' as const, networks: [], disks: [
    { name: 'root', image: '/o', format: 'qcow2', readOnly: false, media: 'disk' },
    { name: 'cd', image: '/iso', format: 'raw', readOnly: true, media: 'cdrom' },
  ] };
  const claims = claimsFor(spec, { root: { layers: [layer('/o', 10), layer('/b', 11)] }, cd: { layers: [layer('/iso', 12)] } });
  assert.deepEqual(claims.map((c) => [c.path, c.writable]), [['/o', true], ['/b', false], ['/iso', false]]);
});

test('sharing a read-only base is fine; writing what another VM holds is a conflict, by inode not name', () => {
  const base = { path: '/b', dev: 1, ino: 11, writable: false };
  const mine = [{ path: '/o2', dev: 1, ino: 20, writable: true }, base];
  assert.equal(findConflict(mine, [{ name: 'x', disks: [{ path: '/o1', dev: 1, ino: 10, writable: true }, base] }]), null);
  const hit = findConflict([{ path: '/link-to-o1', dev: 1, ino: 10, writable: true }], [{ name: 'x', disks: [{ path: '/o1', dev: 1, ino: 10, writable: true }] }]);
  assert.equal(hit?.other, 'x');
  assert.ok(findConflict([{ path: '/b', dev: 1, ino: 11, writable: false }], [{ name: 'y', disks: [{ path: '/b', dev: 1, ino: 11, writable: true }] }]) !== null, 'reading what another writes conflicts too');
  assert.equal(findConflict([{ path: '/b', dev: 2, ino: 11, writable: true }], [{ name: 'z', disks: [base] }]), null, 'same inode on another device is another file');
});
