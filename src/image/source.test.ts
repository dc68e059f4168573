/** @module image/source.test: the real opener opens read-only (checked in /proc/self/fdinfo while open) and closes what it opens. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { nodeImageOpener } from './index.js';
import { qemuImg, tempDir } from './testing.js';

/** The fds of this process open on `path`, with their open flags from /proc/self/fdinfo. */
function fdsOn(path: string): Array<{ fd: string; flags: number }> {
  const out: Array<{ fd: string; flags: number }> = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    if (target !== path) continue;
    const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    out.push({ fd, flags: Number.parseInt(flags ?? '0', 8) });
  }
  return out;
}

test('images are opened O_RDONLY and the fd is closed afterwards', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'a.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', path, '1M']);
  const src = await nodeImageOpener.open(path, { realPath: true });
  const open = fdsOn(path);
  assert.equal(open.length, 1);
  assert.equal(open[0]!.flags & 3, 0, `access mode O_RDONLY, flags 0${open[0]!.flags.toString(8)}`);
  assert.equal(src.realPath, path);
  await src.close();
  assert.deepEqual(fdsOn(path), []);
  await nodeImageOpener.identify(path);
  assert.deepEqual(fdsOn(path), []);
});
