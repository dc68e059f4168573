/** warden ssh's target (pure): the default login and key, ssh's options, and the quoting that keeps a command's argv. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseSpec } from '../../spec/index.js';
import { chooseIdentity, defaultUser, shellQuote, sshOptions } from './ssh-target.js';

const A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvIpGZHm9Sq4Vb0yYjq+CyLbKkHn6jVqEY8vE2x4rVd alice@laptop';
const B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhxYoJ0GQn8x5JbYp0x4w2C6Q4kR0m3y0bQfZ2c1a1b bob@desk';
const W = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK8wM1pGmVbHZ3dC4sQn0R2yT6uX9aE1fJ7kL5oP3qW2 qemu-warden';

test('login and key: the first cloud-init user; warden\'s key when that user had none, else the candidate cloud-init was given', () => {
  const ci = parseSpec(JSON.stringify({ apiVersion: 'warden/v1', name: 'v', cloudInit: { users: [{ name: 'carol' }, { name: 'alice', sshAuthorizedKeys: [A] }] } }), 'v.json').cloudInit;
  const warden = { identity: '/state/ssh/id_ed25519', publicKey: W };
  const mine = [{ identity: '/home/x/.ssh/id_rsa', publicKey: B }, { identity: '/home/x/.ssh/id_ed25519', publicKey: A.replace('alice@laptop', 'other comment') }];
  assert.equal(defaultUser(ci), 'carol');
  assert.equal(defaultUser(undefined), undefined);
  assert.equal(chooseIdentity(ci, 'carol', mine, warden), '/state/ssh/id_ed25519');
  assert.equal(chooseIdentity(ci, 'alice', mine, warden), '/home/x/.ssh/id_ed25519', 'matched by key, not by comment');
  assert.equal(chooseIdentity(ci, 'alice', [mine[0]!], warden), undefined, 'no candidate holds the key: ssh\'s own defaults');
  assert.equal(chooseIdentity(ci, 'root', mine, warden), undefined);
  assert.equal(chooseIdentity(undefined, 'carol', mine, warden), undefined);
});

test('ssh options: the VM\'s own known_hosts under its name, no forwarding, the key alone when one is chosen', () => {
  const o = sshOptions('/s/vms/v/known_hosts', 'v', '/k');
  const opts = o.filter((_, i) => o[i - 1] === '-o');
  for (const want of ['UserKnownHostsFile=/s/vms/v/known_hosts', 'GlobalKnownHostsFile=/dev/null', 'StrictHostKeyChecking=accept-new', 'HostKeyAlias=warden-v', 'ForwardAgent=no', 'ForwardX11=no', 'IdentitiesOnly=yes', 'HashKnownHosts=no']) {
    assert.ok(opts.includes(want), want);
  }
  assert.deepEqual(o.slice(o.indexOf('-i'), o.indexOf('-i') + 2), ['-i', '/k']);
  const none = sshOptions('/kh', 'v', undefined);
  assert.ok(!none.includes('-i') && !none.includes('IdentitiesOnly=yes'));
});

test('a command\'s words reach the guest\'s shell as the same argv', () => {
  const words = ['printf', '%s|', "it's", 'a b', '$HOME', '', '; rm -rf /', 'plain-word'];
  const r = spawnSync('/bin/sh', ['-c', words.map(shellQuote).join(' ')], { encoding: 'utf8' });
  assert.equal(r.stdout, "it's|a b|$HOME||; rm -rf /|plain-word|");
  assert.equal(shellQuote('id'), 'id');
});
