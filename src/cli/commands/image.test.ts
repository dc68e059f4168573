/** @module cli/commands/image.test: `warden image inspect|chain` end to end through `run`, on images made by the real qemu-img. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../main.js';
import type { Io } from '../output.js';
import { qemuImg, tempDir } from '../../image/testing.js';

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (s) => { stdout.push(s); }, err: (s) => { stderr.push(s); } };
}

test('image inspect --json prints the documented fields, null where absent', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  qemuImg(['create', '-q', '-f', 'qcow2', join(tmp.dir, 'a.qcow2'), '3M']);
  const io = capture();
  assert.equal(await run(['image', 'inspect', '--json', join(tmp.dir, 'a.qcow2')], io), 0);
  const out = JSON.parse(io.stdout.join('')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(out).sort(), ['backingFilename', 'backingFormat', 'bytesRead', 'corrupt', 'dataFile', 'dirty', 'encrypted', 'format', 'formatSpecific', 'virtualSize']);
  assert.equal((out['formatSpecific'] as Record<string, unknown>)['compat'], '1.1');
  assert.equal(out['format'], 'qcow2');
  assert.equal(out['virtualSize'], 3 * 1024 * 1024);
  assert.equal(out['backingFilename'], null);
});

test('image chain prints a tree, and a refusal as {error: {code, message, layer}} with exit 3', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  qemuImg(['create', '-q', '-f', 'raw', 'base.raw', '1M'], tmp.dir);
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'top.qcow2'], tmp.dir);
  qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'nbd:localhost:10809', '-F', 'raw', '-o', 'size=1M', 'nbd.qcow2'], tmp.dir);
  const io = capture();
  assert.equal(await run(['image', 'chain', join(tmp.dir, 'top.qcow2')], io), 0);
  assert.match(io.stdout.join('\n'), /top\.qcow2 \[qcow2, 1048576 bytes.*\n└─ .*base\.raw \[raw/);
  const bad = capture();
  assert.equal(await run(['image', 'chain', '--json', join(tmp.dir, 'nbd.qcow2')], bad), 3);
  const err = (JSON.parse(bad.stdout.join('')) as { error: Record<string, unknown> }).error;
  assert.equal(err['code'], 'IMAGE_BACKING_PROTOCOL');
  assert.equal(err['layer'], join(tmp.dir, 'nbd.qcow2'));
  assert.equal(typeof err['message'], 'string');
  const usage = capture();
  assert.equal(await run(['image', 'inspect', '--format', 'nope', join(tmp.dir, 'top.qcow2')], usage), 2);
});

test('image chain of an overlay whose backing file is gone: exit 3, both files named, a rebase hint', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  qemuImg(['create', '-q', '-f', 'qcow2', 'base.qcow2', '1M'], tmp.dir);
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'], tmp.dir);
  rmSync(join(tmp.dir, 'base.qcow2'));
  const io = capture();
  assert.equal(await run(['image', 'chain', join(tmp.dir, 'top.qcow2')], io), 3);
  const text = io.stderr.join('\n');
  assert.match(text, /backing file .*base\.qcow2 \(recorded as "base\.qcow2" in .*top\.qcow2\) does not exist \[IMAGE_NOT_FOUND\]/);
  assert.match(text, /hint: restore .*base\.qcow2, or point the overlay at the right file: qemu-img rebase -u -b NEW-BACKING -F FORMAT .*top\.qcow2/);
});
