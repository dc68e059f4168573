/**
 * Sealed boot-file copies reused across starts: the same unchanged file gives fds of one
 * sealed copy (read-only), a changed file a fresh copy, a file changed too recently to tell
 * is not kept, and the bytes kept stay under the cap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync, closeSync, utimesSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../sys/index.js';
import { openSealedCopies } from './boot-fds.js';
import { SealedCopyCache } from './sealed-cache.js';
import type { PlannedFdView } from './ports.js';
import type { Owner } from '../image/index.js';

function dir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'warden-sealed-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const planned = (path: string, name = 'kernel'): PlannedFdView[] => [{ kind: 'sealed-copy', name, path, from: `boot.${name}`, target: 3 } as unknown as PlannedFdView];

/** Opens the planned copy through the cache: [inode of the memfd, its content, its access mode]. */
function take(cache: SealedCopyCache | undefined, path: string, name = 'kernel', owner: Owner | null = null): { ino: number; text: string; accmode: number } {
  const native = loadNative();
  const fds = openSealedCopies(planned(path, name), 'wdc', native, owner, cache);
  const fd = fds.get(name)!;
  try {
    const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '-1', 8);
    return { ino: fstatSync(fd).ino, text: readFileSync(`/proc/self/fd/${fd}`, 'utf8'), accmode: flags & 3 };
  } finally {
    closeSync(fd);
  }
}

test('an unchanged file is copied once; every start gets its own read-only fd of that copy', (t) => {
  const d = dir(t);
  const file = join(d, 'vmlinuz');
  writeFileSync(file, 'kernel one');
  const cache = new SealedCopyCache(loadNative(), 1 << 20, -60_000) // racy window off: keep even a file written just now;
  t.after(() => cache.clear());
  const a = take(cache, file);
  const b = take(cache, file);
  assert.equal(a.ino, b.ino, 'the same sealed copy');
  assert.equal(b.text, 'kernel one');
  assert.equal(a.accmode, 0, 'O_RDONLY');
  assert.deepEqual(cache.size, { copies: 1, bytes: 10 });
  writeFileSync(file, 'kernel two!');
  const c = take(cache, file);
  assert.notEqual(c.ino, a.ino, 'a changed file is copied again');
  assert.equal(c.text, 'kernel two!');
  assert.deepEqual(cache.size, { copies: 1, bytes: 11 }, 'the stale copy is dropped');
});

test('a file changed within the racy window is not kept, and copies stay under the cap', (t) => {
  const d = dir(t);
  const file = join(d, 'initrd');
  writeFileSync(file, 'fresh');
  const cautious = new SealedCopyCache(loadNative());
  t.after(() => cautious.clear());
  const a = take(cautious, file, 'initrd');
  const b = take(cautious, file, 'initrd');
  assert.notEqual(a.ino, b.ino, 'copied at each use while its ctime is recent');
  assert.equal(b.text, 'fresh');
  assert.deepEqual(cautious.size, { copies: 0, bytes: 0 });
  const other = join(d, 'other');
  writeFileSync(other, 'other file');
  const small = new SealedCopyCache(loadNative(), 12, -60_000);
  t.after(() => small.clear());
  take(small, file, 'initrd');
  take(small, other);
  assert.deepEqual(small.size, { copies: 1, bytes: 10 }, 'the least recently used copy went');
  const none = take(undefined, other);
  assert.equal(none.text, 'other file');
  assert.equal(none.accmode, 0, 'without a cache too, a read-only fd');
});

test('copies are never shared across owners: the same file checked for another uid is copied again', (t) => {
  const d = dir(t);
  chmodSync(d, 0o755); // both owners may read it: the check passes for each
  const file = join(d, 'vmlinuz');
  writeFileSync(file, 'kernel bytes', { mode: 0o644 });
  const old = new Date(Date.now() - 60_000);
  utimesSync(file, old, old);
  const cache = new SealedCopyCache(loadNative(), 1024 ** 2, 0);
  t.after(() => cache.clear());
  const root = take(cache, file);
  const a1 = take(cache, file, 'kernel', { uid: 4242, gids: [4242] });
  const a2 = take(cache, file, 'kernel', { uid: 4242, gids: [4242] });
  const b = take(cache, file, 'kernel', { uid: 4343, gids: [4343] });
  assert.equal(a1.ino, a2.ino, 'one owner reuses its copy');
  assert.notEqual(a1.ino, root.ino);
  assert.notEqual(b.ino, a1.ino, 'another owner gets a copy of its own');
  assert.equal(b.text, 'kernel bytes');
  assert.equal(cache.size.copies, 3);
});
