/** The cloudInit section: a full example is valid with defaults filled; every bad field is reported at its own line and path, all at once. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpecError, parseSpec } from './index.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvIpGZHm9Sq4Vb0yYjq+CyLbKkHn6jVqEY8vE2x4rVd me@host';

test('a cloudInit section is valid and gets its defaults', () => {
  const s = parseSpec(`apiVersion: warden/v1
name: web1
cloudInit:
  hostname: web1.example
  users:
    - name: alice
      sshAuthorizedKeys: ["${KEY}"]
      sudo: true
    - name: bob
  userData: |
    #cloud-config
    packages: [htop]
  networkConfig:
    version: 2
    ethernets: { all: { match: { name: "en*" }, dhcp4: true } }
`, 'web1.yaml');
  assert.equal(s.cloudInit?.hostname, 'web1.example');
  assert.deepEqual(s.cloudInit?.users.map((u) => [u.name, u.sudo, u.sshAuthorizedKeys.length]), [['alice', true, 1], ['bob', false, 0]]);
  assert.match(s.cloudInit?.userData ?? '', /^#cloud-config\npackages/);
  assert.equal(s.cloudInit?.networkConfig?.['version'], 2);
});

test('bad cloudInit fields are each located (line, path) and reported together', () => {
  const text = `apiVersion: warden/v1
name: web1
cloudInit:
  hostname: Web_1
  users:
    - name: Alice
      sshAuthorizedKeys: ["not a key"]
      sudo: "line\\nbreak"
    - name: bob
    - name: bob
  userData: "packages: [htop]"
  networkConfig: { version: 3 }
  vendorData: x
`;
  assert.throws(() => parseSpec(text, 'web1.yaml'), (e) => {
    assert.ok(e instanceof SpecError);
    const at = new Map(e.issues.map((i) => [i.path, i]));
    const expect: Array<[string, number, RegExp]> = [
      ['cloudInit.hostname', 4, /must be a host name/],
      ['cloudInit.users[0].name', 6, /must be a Linux user name/],
      ['cloudInit.users[0].sshAuthorizedKeys[0]', 7, /OpenSSH public key/],
      ['cloudInit.users[0].sudo', 8, /sudoers rule/],
      ['cloudInit.users[2].name', 10, /duplicate user name "bob", already used by users\[1\]/],
      ['cloudInit.userData', 11, /#cloud-config/],
      ['cloudInit.networkConfig.version', 12, /./],
    ];
    for (const [path, line, msg] of expect) {
      const i = at.get(path);
      assert.ok(i, `an issue at ${path}; got ${[...at.keys()].join(', ')}`);
      assert.equal(i.line, line, `${path} is on line ${line}`);
      assert.match(i.message, msg);
    }
    assert.ok(e.issues.some((i) => i.path.startsWith('cloudInit') && /vendorData/.test(`${i.path} ${i.message}`)), 'the unknown key is reported');
    return true;
  });
});
