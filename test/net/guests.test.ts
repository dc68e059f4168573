import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guestSkipReason } from './guest.js';
import { createNetns, inNetns, netnsName, netSkipReason } from './netns.js';
import { ovsSkipReason, startPrivateOvs } from './ovs.js';

const skip = netSkipReason() ?? guestSkipReason();
const ovsSkip = skip ?? ovsSkipReason();

interface PingResult { pings: string[]; ports: string[]; names: string[]; portsAfter: string[]; linksAfter: string[] }

test('two guests on a Linux bridge ping each other; after kill -9 and undo nothing is left', { skip, timeout: 240_000 }, async (t) => {
  const ns = createNetns(t, netnsName('g1'));
  const r = await inNetns<PingResult>(ns, 'guest-scenarios#guestsPing', {}, 220_000);
  assert.deepEqual(r.pings.sort(), ['WARDEN-PING-OK 10.99.0.1', 'WARDEN-PING-OK 10.99.0.2']);
  assert.deepEqual(r.ports, [...r.names].sort());
  assert.deepEqual(r.portsAfter, []);
  assert.deepEqual(r.linksAfter.filter((n) => r.names.includes(n)), []);
});

test('two guests on an Open vSwitch bridge (userspace datapath) ping each other; ports removed after', { skip: ovsSkip, timeout: 240_000 }, async (t) => {
  const ns = createNetns(t, netnsName('g2'));
  const { db } = startPrivateOvs(t, ns, 'wdtovs0');
  const r = await inNetns<PingResult>(ns, 'guest-scenarios#guestsPing', { ovsDb: db }, 220_000);
  assert.deepEqual(r.pings.sort(), ['WARDEN-PING-OK 10.99.0.1', 'WARDEN-PING-OK 10.99.0.2']);
  assert.deepEqual(r.ports, [...r.names].sort());
  assert.deepEqual(r.portsAfter, []);
  assert.deepEqual(r.linksAfter.filter((n) => r.names.includes(n)), []);
});

test('user-mode networking: a host forward on 127.0.0.1 reaches the guest HTTP server', { skip, timeout: 240_000 }, async (t) => {
  const ns = createNetns(t, netnsName('g3'));
  const r = await inNetns<{ body: string; listeners: string; netdev: unknown }>(ns, 'guest-scenarios#userModeForward', {}, 220_000);
  assert.match(r.body, /warden guest/);
  assert.match(r.listeners, /127\.0\.0\.1:18080/, 'the forward listens on loopback only');
  assert.doesNotMatch(r.listeners, /0\.0\.0\.0:18080|\*:18080/);
});

test('macvtap: a guest on a macvtap over a veth pings the veth peer; undo removes the macvtap', { skip, timeout: 240_000 }, async (t) => {
  const ns = createNetns(t, netnsName('g4'));
  const r = await inNetns<{ unsupported?: string; ping: string; ifname: string; linksAfter: string[] }>(ns, 'guest-scenarios#macvtapGuest', {}, 220_000);
  if (r.unsupported !== undefined) return t.skip(`this kernel cannot create macvtap devices (${r.unsupported}); plan and commands are golden-tested`);
  assert.equal(r.ping, 'WARDEN-PING-OK 10.98.0.1');
  assert.ok(!r.linksAfter.includes(r.ifname), 'the macvtap is gone after undo');
});

test('vhost-net: real test', async (t) => {
  const { existsSync } = await import('node:fs');
  if (!existsSync('/dev/vhost-net')) return t.skip('no /dev/vhost-net on this host: vhost stays off (the planner emits no vhost action)');
  assert.ok(existsSync('/dev/vhost-net'));
});
