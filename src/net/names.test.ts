import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostIfName, hostSideMac, hostfwdRule, isVmIfName, macProblem, MAX_IFNAME, stableMac, tapNetdev, userNetdev, vmIfPrefix } from './index.js';

test('host device names are deterministic, MAX_IFNAME bytes, carry the prefix and identify the VM', () => {
  assert.equal(hostIfName('web1', 'net0'), hostIfName('web1', 'net0'));
  assert.notEqual(hostIfName('web1', 'net0'), hostIfName('web1', 'net1'));
  assert.notEqual(hostIfName('web1', 'net0'), hostIfName('web2', 'net0'));
  for (const [vm, nic, prefix] of [['a', 'b', 'wd'], ['ünïcode VM name that is very long indeed', 'eth/0', 'wdt'], ['x', 'y', 'q']] as const) {
    const name = hostIfName(vm, nic, prefix);
    assert.equal(Buffer.byteLength(name), MAX_IFNAME);
    assert.match(name, /^[a-z][a-z0-9]+$/);
    assert.ok(name.startsWith(prefix));
    assert.ok(isVmIfName(name, vm, prefix));
    assert.ok(!isVmIfName(name, vm + 'x', prefix));
  }
  assert.ok(hostIfName('web1', 'net0', 'wdt').startsWith(vmIfPrefix('web1', 'wdt')));
  assert.throws(() => hostIfName('a', 'b', 'toolong'), RangeError);
  assert.throws(() => hostIfName('a', 'b', 'W'), RangeError);
});

test('no two of 64 NICs of one VM collide (20 bits per NIC); no two of 2000 VMs share a device prefix (35 bits)', () => {
  assert.equal(new Set(Array.from({ length: 64 }, (_, i) => hostIfName('vm', `net${i}`))).size, 64);
  assert.equal(new Set(Array.from({ length: 2000 }, (_, i) => vmIfPrefix(`vm${i}`))).size, 2000);
});

test('stable MACs are unicast, locally stable, under the OUI; the host side starts with fe', () => {
  const mac = stableMac('web1', 'net0');
  assert.equal(mac, stableMac('web1', 'net0'));
  assert.match(mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(macProblem(mac), undefined);
  assert.equal(hostSideMac(mac), 'fe' + mac.slice(2));
  assert.match(macProblem('fe:54:00:00:00:01')!, /reserved/);
  assert.match(macProblem('01:00:5e:00:00:01')!, /multicast/);
  assert.match(macProblem('52:54:00:00:00')!, /six/);
  assert.throws(() => stableMac('a', 'b', '01:00:00'), RangeError);
});

test('QEMU netdev JSON: tap fds, vhost fds, user-mode forwards bound to loopback', () => {
  assert.deepEqual(tapNetdev('hostnet0', [3]), { type: 'tap', id: 'hostnet0', fd: '3' });
  assert.deepEqual(tapNetdev('hostnet0', [3, 4], [5, 6]), { type: 'tap', id: 'hostnet0', fds: '3:4', vhost: true, vhostfds: '5:6' });
  assert.throws(() => tapNetdev('x', [3, 4], [5]), RangeError);
  assert.deepEqual(userNetdev('u0', { hostfwd: [{ proto: 'tcp', hostPort: 8022, guestPort: 22 }], restrict: true }),
    { type: 'user', id: 'u0', restrict: true, hostfwd: [{ str: 'tcp:127.0.0.1:8022-:22' }] });
  assert.throws(() => hostfwdRule({ proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 80, guestPort: 80 }), /loopback/);
  assert.equal(hostfwdRule({ proto: 'udp', hostAddr: '0.0.0.0', hostPort: 53, guestAddr: '10.0.2.15', guestPort: 53 }, true), 'udp:0.0.0.0:53-10.0.2.15:53');
  assert.throws(() => hostfwdRule({ proto: 'tcp', hostPort: 0, guestPort: 22 }), /1\.\.65535/);
});
