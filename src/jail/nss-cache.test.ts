/** The NSS answer cache: kept only for file-backed sources, dropped when a source file or the switch changes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NssCache, fileBackedSources, nssCacheKey } from './nss-cache.js';
import { loadNative } from '../sys/native.js';

function fakeRoot(t: { after(fn: () => void): void }, nsswitch: string): string {
  const root = mkdtempSync('/tmp/warden-nss-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/nsswitch.conf'), nsswitch);
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  return root;
}

test('only passwd and group lines of files (and systemd) are file-backed', () => {
  assert.deepEqual([...fileBackedSources('passwd: files\ngroup: files\n')!], ['files']);
  assert.deepEqual([...fileBackedSources('passwd:         files systemd\ngroup:          files systemd # comment\nhosts: dns\n')!].sort(), ['files', 'systemd']);
  assert.equal(fileBackedSources('passwd: files sss\ngroup: files\n'), undefined, 'a network source');
  assert.equal(fileBackedSources('passwd: files [NOTFOUND=return] ldap\ngroup: files\n'), undefined);
  assert.equal(fileBackedSources('passwd: compat\ngroup: compat\n'), undefined);
  assert.equal(fileBackedSources('passwd: files\n'), undefined, 'no group line: glibc\'s default, not cached');
  assert.equal(fileBackedSources('# passwd: files\n#group: files\n'), undefined);
});

test('the key changes with /etc/passwd, /etc/group or the switch, and is undefined where answers can change without a file', (t) => {
  const root = fakeRoot(t, 'passwd: files systemd\ngroup: files systemd\n');
  assert.equal(nssCacheKey(root), undefined, 'files changed within the racy window key nothing: an in-place edit in the same tick would not show');
  const key = (r: string): string | undefined => nssCacheKey(r, 0);
  const k1 = key(root);
  assert.ok(k1 !== undefined);
  assert.equal(key(root), k1, 'stable while nothing changes');
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nnew:x:200000:200000::/:/bin/false\n');
  const k2 = key(root);
  assert.ok(k2 !== undefined && k2 !== k1, 'an account added');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\ng:x:200001:\n');
  assert.notEqual(key(root), k2, 'a group added');
  mkdirSync(join(root, 'run/systemd/userdb'), { recursive: true });
  assert.equal(key(root), undefined, 'nss-systemd has a service to ask (dynamic users, machined...)');
  rmSync(join(root, 'run'), { recursive: true });
  mkdirSync(join(root, 'etc/userdb'));
  assert.equal(key(root), undefined, 'drop-in user records');
  const sss = fakeRoot(t, 'passwd: files sss\ngroup: files sss\n');
  assert.equal(key(sss), undefined);
  const files = fakeRoot(t, 'passwd: files\ngroup: files\n');
  mkdirSync(join(files, 'etc/userdb'));
  assert.ok(key(files) !== undefined, 'without systemd in the switch its records are never asked');
});

test('answers are kept per key, a new key drops them, failures are never kept', () => {
  const c = new NssCache();
  assert.equal(c.lookup('k1', [1, 2]).size, 0);
  c.store('k1', new Map([[1, ['alice', null]], [2, [null, null]], [3, ['?EIO', null]]]));
  assert.deepEqual([...c.lookup('k1', [1, 2, 3])], [[1, ['alice', null]], [2, [null, null]]]);
  assert.equal(c.lookup('k2', [1, 2]).size, 0, 'another key: nothing');
  c.store('k1', new Map([[1, ['alice', null]]]));
  assert.equal(c.lookup('k2', [1]).size, 0, 'answers got under an old key are not kept');
  c.store('k2', new Map([[1, ['bob', null]]]));
  assert.equal(c.lookup(undefined, [1]).size, 0, 'not cacheable: nothing, and the cache is emptied');
  assert.equal(c.lookup('k2', [1]).size, 0);
});

test('procIdsSync reads this process\'s ids on the calling thread, and declines (null) past its bound', () => {
  let native;
  try { native = loadNative(); } catch { return; }
  if (native.procIdsSync === undefined) return;
  const rows = native.procIdsSync(1_000_000)!;
  const mine = Array.from({ length: rows.length / 9 }, (_, i) => rows.subarray(i * 9, i * 9 + 9)).find((r) => r[0] === process.pid);
  assert.deepEqual(mine && [...mine.subarray(1)], [...Array(4).fill(process.getuid!()), ...Array(4).fill(process.getgid!())]);
  assert.equal(native.procIdsSync(0), null);
});
