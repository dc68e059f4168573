import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reachableHelper } from './helper-path.js';

test('an unreachable helper is copied once per content; a changed helper or a removed copy is copied again', (t) => {
  const home = mkdtempSync(join(tmpdir(), 'warden-helper-')); // 0700: out of other uids' reach
  const copyDir = mkdtempSync(join(tmpdir(), 'warden-helper-copies-'));
  t.after(() => { rmSync(home, { recursive: true, force: true }); rmSync(copyDir, { recursive: true, force: true }); });
  const helper = join(home, 'warden-exec');
  writeFileSync(helper, 'first build', { mode: 0o755 });
  const first = reachableHelper(helper, copyDir);
  assert.ok(first.startsWith(`${copyDir}/`), first);
  assert.equal(readFileSync(first, 'utf8'), 'first build');
  assert.equal(reachableHelper(helper, copyDir), first, 'the same file: the same copy (remembered, not re-hashed)');
  rmSync(first);
  assert.equal(reachableHelper(helper, copyDir), first, 'a removed copy is made again');
  assert.ok(existsSync(first));
  rmSync(helper);
  writeFileSync(helper, 'second build', { mode: 0o755 }); // a rebuild: new content (and inode)
  const second = reachableHelper(helper, copyDir);
  assert.notEqual(second, first);
  assert.equal(readFileSync(second, 'utf8'), 'second build');
});
