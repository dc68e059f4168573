/** The NoCloud seed: its files from the cloudInit section (pure), the instance id's stability, and the ISO volume read back with xorriso. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { NodeProcessRunner } from '../sys/index.js';
import { parseSpec } from '../spec/index.js';
import type { CloudInit } from '../spec/index.js';
import { SUDO_ALL, buildSeed, writeSeed, type Seed } from './index.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvIpGZHm9Sq4Vb0yYjq+CyLbKkHn6jVqEY8vE2x4rVd me@host';
const WARDEN = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhxYoJ0GQn8x5JbYp0x4w2C6Q4kR0m3y0bQfZ2c1a1b qemu-warden';

/** The section as the spec parser fills it. */
function ci(section: Record<string, unknown>): CloudInit {
  return parseSpec(JSON.stringify({ apiVersion: 'warden/v1', name: 'vm1', cloudInit: section }), 'vm1.json').cloudInit!;
}

const file = (s: Seed, name: string): string | undefined => s.files.find((f) => f.name === name)?.content;

test('users become a #cloud-config with their keys and sudo; meta-data names the instance and host', () => {
  const s = buildSeed({ vm: 'vm1', cloudInit: ci({ hostname: 'web', users: [{ name: 'alice', sshAuthorizedKeys: [KEY], sudo: true }, { name: 'bob', sudo: 'ALL=(ALL) ALL' }] }) });
  const ud = file(s, 'user-data')!;
  assert.match(ud, /^#cloud-config\n/);
  const users = (parse(ud) as { users: Array<Record<string, unknown>> }).users;
  assert.deepEqual(users[0], { name: 'alice', shell: '/bin/bash', lock_passwd: true, ssh_authorized_keys: [KEY], sudo: SUDO_ALL });
  assert.deepEqual(users[1], { name: 'bob', shell: '/bin/bash', lock_passwd: true, sudo: 'ALL=(ALL) ALL' });
  assert.deepEqual(parse(file(s, 'meta-data')!), { 'instance-id': s.instanceId, 'local-hostname': 'web' });
  assert.equal(file(s, 'network-config'), undefined);
});

test('the instance id changes with the section and only with it', () => {
  const id = (section: Record<string, unknown>, vm = 'vm1', wardenKey?: string): string =>
    buildSeed({ vm, cloudInit: ci(section), ...(wardenKey === undefined ? {} : { wardenKey }) }).instanceId;
  const a = { hostname: 'web', users: [{ name: 'alice', sshAuthorizedKeys: [KEY] }], networkConfig: { version: 2, ethernets: {} } };
  assert.match(id(a), /^iid-warden-[0-9a-f]{16}$/);
  assert.equal(id(a), id(structuredClone(a)), 'same section, same id');
  assert.equal(id(a), id({ networkConfig: { ethernets: {}, version: 2 }, users: a.users, hostname: 'web' }), 'key order does not count');
  assert.notEqual(id(a), id({ ...a, hostname: 'web2' }));
  assert.notEqual(id(a), id({ ...a, users: [{ name: 'alice', sshAuthorizedKeys: [KEY], sudo: true }] }));
  assert.notEqual(id(a), id(a, 'vm2'), 'another VM is another instance');
  assert.equal(id({ users: [{ name: 'carol' }] }, 'vm1', WARDEN), id({ users: [{ name: 'carol' }] }, 'vm1', WARDEN));
  assert.notEqual(id({ users: [{ name: 'carol' }] }, 'vm1', WARDEN), id({ users: [{ name: 'carol' }] }, 'vm1', KEY), 'a new warden key is a new instance');
});

test('the first user without keys gets warden\'s key; a user with keys does not', () => {
  const s = buildSeed({ vm: 'vm1', cloudInit: ci({ users: [{ name: 'carol' }, { name: 'dave' }] }), wardenKey: WARDEN });
  const users = (parse(file(s, 'user-data')!) as { users: Array<Record<string, unknown>> }).users;
  assert.deepEqual(users[0]?.['ssh_authorized_keys'], [WARDEN]);
  assert.equal(users[1]?.['ssh_authorized_keys'], undefined);
  const own = buildSeed({ vm: 'vm1', cloudInit: ci({ users: [{ name: 'alice', sshAuthorizedKeys: [KEY] }] }), wardenKey: WARDEN });
  assert.doesNotMatch(file(own, 'user-data')!, /qemu-warden/);
});

test('userData passes through unchanged alone, and as the second MIME part next to users', () => {
  const raw = '#cloud-config\npackages: [htop]\nruncmd: [[touch, /x]]\n';
  const alone = buildSeed({ vm: 'vm1', cloudInit: ci({ userData: raw }) });
  assert.equal(file(alone, 'user-data'), raw);
  const both = file(buildSeed({ vm: 'vm1', cloudInit: ci({ userData: raw, users: [{ name: 'alice', sshAuthorizedKeys: [KEY] }] }) }), 'user-data')!;
  const boundary = /boundary="([^"]+)"/.exec(both)?.[1];
  assert.ok(boundary);
  const parts = both.split(`--${boundary}`);
  assert.equal(parts.length, 4, 'preamble, two parts, closing');
  assert.match(parts[1]!, /Content-Type: text\/cloud-config[\s\S]*\n\n#cloud-config\nusers:/);
  assert.ok(parts[2]!.endsWith(`\n\n${raw}`), 'the raw part is byte for byte the userData');
  const script = file(buildSeed({ vm: 'vm1', cloudInit: ci({ userData: '#!/bin/sh\necho hi\n', users: [{ name: 'a' }] }) }), 'user-data')!;
  assert.match(script, /Content-Type: text\/x-shellscript/);
});

test('networkConfig becomes network-config', () => {
  const net = { version: 2, ethernets: { eth: { match: { name: 'en*' }, dhcp4: true } } };
  const s = buildSeed({ vm: 'vm1', cloudInit: ci({ networkConfig: net }) });
  assert.deepEqual(parse(file(s, 'network-config')!), net);
  assert.equal(file(s, 'user-data'), '#cloud-config\n{}\n');
});

test('writeSeed makes an ISO 9660 volume labelled cidata holding exactly the seed files', { skip: spawnSync('xorriso', ['-version']).status !== 0 ? 'xorriso is not installed' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-seed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const seed = buildSeed({ vm: 'vm1', cloudInit: ci({ hostname: 'web', users: [{ name: 'alice', sshAuthorizedKeys: [KEY] }], networkConfig: { version: 2, ethernets: {} } }) });
  const iso = join(dir, 'cidata.iso');
  await writeSeed(seed, iso, new NodeProcessRunner());
  assert.ok(statSync(iso).size > 0);
  const label = spawnSync('blkid', ['-o', 'value', '-s', 'LABEL', iso], { encoding: 'utf8' });
  assert.equal(label.stdout.trim(), 'cidata');
  for (const f of seed.files) {
    const out = join(dir, `out-${f.name}`);
    const r = spawnSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/${f.name}`, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(out, 'utf8'), f.content, `${f.name} reads back unchanged`);
  }
  const ls = spawnSync('xorriso', ['-indev', iso, '-ls', '/'], { encoding: 'utf8' });
  assert.deepEqual(ls.stdout.trim().split('\n').map((l) => l.replace(/'/g, '')).sort(), ['meta-data', 'network-config', 'user-data']);
  const left = spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout.trim().split('\n').filter((n) => !n.startsWith('out-'));
  assert.deepEqual(left, ['cidata.iso'], 'no temporary files are left');
});
