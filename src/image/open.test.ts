/** @module image/open.test: check before open, then open once: swaps made right after the check (from the guard itself, so the race is deterministic) are refused without opening anything or blocking. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as C, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, openCheckedSync } from './index.js';
import { tempDir } from './testing.js';

function fdsUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => { try { const p = readlinkSync(`/proc/self/fd/${fd}`); return p.startsWith(dir) ? [p] : []; } catch { return []; } });
}

function setup(t: { after(fn: () => void): void }): { dir: string; file: string } {
  const tmp = tempDir();
  t.after(tmp.remove);
  mkdirSync(join(tmp.dir, 'img', 'sub'), { recursive: true, mode: 0o700 });
  mkdirSync(join(tmp.dir, 'secret', 'sub'), { recursive: true, mode: 0o700 });
  writeFileSync(join(tmp.dir, 'secret', 'sub', 'a.raw'), 'SECRET');
  const file = join(tmp.dir, 'img', 'sub', 'a.raw');
  writeFileSync(file, Buffer.alloc(512));
  return { dir: tmp.dir, file };
}

const changedOrNotAFile = (e: unknown): boolean => e instanceof ImageError && (e.code === 'IMAGE_CHANGED' || e.code === 'IMAGE_NOT_A_FILE');

test('the fd returned is the checked file, with the access mode asked for, O_NONBLOCK and no controlling tty', (t) => {
  const { file } = setup(t);
  const f = openCheckedSync(file, { flags: C.O_RDWR, guard: () => undefined });
  try {
    assert.equal(readlinkSync(`/proc/self/fd/${f.fd}`), file);
    const flags = Number.parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${f.fd}`, 'utf8'))![1]!, 8);
    assert.equal(flags & 3, 2, 'O_RDWR');
    assert.equal(flags & C.O_NONBLOCK, C.O_NONBLOCK);
    assert.equal(f.kind, 'file');
  } finally { closeSync(f.fd); }
});

test('a file swapped for a FIFO right after the check is refused, not opened, without blocking', (t) => {
  const { dir, file } = setup(t);
  const swap = () => { renameSync(file, `${file}.old`); execFileSync('mkfifo', [file]); };
  assert.throws(() => openCheckedSync(file, { flags: C.O_RDONLY, guard: swap }), changedOrNotAFile);
  assert.deepEqual(fdsUnder(dir), [], 'nothing left open');
});

test('a directory on the way swapped for a symlink to elsewhere right after the check is refused', (t) => {
  const { dir, file } = setup(t);
  const swap = () => { renameSync(join(dir, 'img', 'sub'), join(dir, 'img', 'sub.old')); symlinkSync(join(dir, 'secret', 'sub'), join(dir, 'img', 'sub')); };
  assert.throws(() => openCheckedSync(file, { flags: C.O_RDONLY, guard: () => { swap(); return join(dir, 'img'); } }),
    (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_CHANGED', 'openat2 (or the recheck through /proc/self/fd) refuses the symlink');
  assert.deepEqual(fdsUnder(dir), []);
});

test('a file replaced by another one (same name, another inode) after the probe is refused by the expected identity', (t) => {
  const { dir, file } = setup(t);
  const first = openCheckedSync(file, { flags: C.O_RDONLY });
  const id = { dev: first.dev, ino: first.ino };
  closeSync(first.fd);
  writeFileSync(`${file}.new`, Buffer.alloc(512));
  renameSync(`${file}.new`, file);
  assert.throws(() => openCheckedSync(file, { flags: C.O_RDONLY, expect: id }), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_CHANGED');
  assert.deepEqual(fdsUnder(dir), []);
});
