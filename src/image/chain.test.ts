/** @module image/chain.test: the chain policy on real qemu-img chains: loops, missing layers, json:/protocol names, depth, allowed dirs, unrecorded formats. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkChain, nodeImageOpener, ImageError, type ImageErrorCode, type ImageOpener } from './index.js';
import { qemuChain, qemuImg, tempDir } from './testing.js';

/** Asserts a rejection with `code` whose layer is `layer`. */
async function refuses(p: Promise<unknown>, code: ImageErrorCode, layer: string): Promise<ImageError> {
  let caught: unknown;
  await p.then(() => assert.fail(`expected ${code}`), (e: unknown) => { caught = e; });
  assert.ok(caught instanceof ImageError, `not an ImageError: ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.layer, layer, caught.message);
  assert.equal((caught.toJSON() as { layer: unknown }).layer, layer);
  return caught;
}

/** Turns the qcow2 backing-format extension into an unknown one, as an old QEMU's overlay would lack it. */
function dropBackingFormat(path: string): void {
  const buf = readFileSync(path);
  const at = buf.subarray(0, 4096).indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
  assert.ok(at > 0, 'backing format extension present');
  buf.writeUInt32BE(0x0badf00d, at);
  writeFileSync(path, buf);
}

function setup(t: { after: (fn: () => void) => void }): { dir: string; c: (...args: string[]) => string } {
  const tmp = tempDir();
  t.after(tmp.remove);
  return { dir: tmp.dir, c: (...args) => qemuImg(['create', '-q', ...args], tmp.dir) };
}

test('a loop through another spelling of the same file is refused with IMAGE_CHAIN_LOOP', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'raw', 'b.img', '1M');
  c('-f', 'qcow2', '-b', 'b.img', '-F', 'raw', 'a.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'a.qcow2', '-F', 'qcow2', '-o', 'size=1M', 'c.qcow2');
  // a.qcow2 → ./sub/../c.qcow2 → a.qcow2 (by a symlink named differently)
  mkdirSync(join(dir, 'sub'));
  symlinkSync(join(dir, 'a.qcow2'), join(dir, 'alias.qcow2'));
  qemuImg(['rebase', '-u', '-f', 'qcow2', '-b', 'sub/../c.qcow2', '-F', 'qcow2', 'a.qcow2'], dir);
  qemuImg(['rebase', '-u', '-f', 'qcow2', '-b', 'alias.qcow2', '-F', 'qcow2', 'c.qcow2'], dir);
  const err = await refuses(walkChain(join(dir, 'a.qcow2')), 'IMAGE_CHAIN_LOOP', join(dir, 'alias.qcow2'));
  assert.equal(err.context['sameAs'], join(dir, 'a.qcow2'));
});

test('a missing backing file names the missing path and the overlay that names it', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'qcow2', '-u', '-b', 'gone.raw', '-F', 'raw', '-o', 'size=1M', 'top.qcow2');
  const err = await refuses(walkChain(join(dir, 'top.qcow2')), 'IMAGE_NOT_FOUND', join(dir, 'gone.raw'));
  assert.equal(err.context['namedBy'], join(dir, 'top.qcow2'));
  await refuses(walkChain(join(dir, 'absent.qcow2')), 'IMAGE_NOT_FOUND', join(dir, 'absent.qcow2'));
});

test('json: and protocol backing names are refused with their own codes, or reported unfollowed when allowed', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'qcow2', '-u', '-b', 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}', '-F', 'raw', '-o', 'size=1M', 'j.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'nbd://127.0.0.1:10809/x', '-F', 'raw', '-o', 'size=1M', 'n.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'nbd://127.0.0.1:10809/x', '-F', 'raw', '-o', 'size=1M', './http:x.qcow2');
  await refuses(walkChain(join(dir, 'j.qcow2')), 'IMAGE_BACKING_JSON', join(dir, 'j.qcow2'));
  await refuses(walkChain(join(dir, 'n.qcow2')), 'IMAGE_BACKING_PROTOCOL', join(dir, 'n.qcow2'));
  const j = await walkChain(join(dir, 'j.qcow2'), { allowJsonBackings: true });
  assert.equal(j.layers.length, 1);
  assert.equal(j.unfollowed?.kind, 'json');
  const n = await walkChain(join(dir, 'n.qcow2'), { allowProtocolBackings: true });
  assert.deepEqual(n.unfollowed, { layer: 0, name: 'nbd://127.0.0.1:10809/x', kind: 'protocol' });
  // a top layer given by a path with a colon is a file, not a protocol
  await refuses(walkChain(join(dir, 'http:x.qcow2')), 'IMAGE_BACKING_PROTOCOL', join(dir, 'http:x.qcow2'));
});

test('chains deeper than maxDepth are refused with IMAGE_CHAIN_TOO_DEEP', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'raw', 'l0', '1M');
  for (let i = 1; i <= 5; i++) c('-f', 'qcow2', '-b', `l${i - 1}`, '-F', i === 1 ? 'raw' : 'qcow2', `l${i}`);
  assert.equal((await walkChain(join(dir, 'l5'), { maxDepth: 6 })).layers.length, 6);
  await refuses(walkChain(join(dir, 'l5'), { maxDepth: 5 }), 'IMAGE_CHAIN_TOO_DEEP', join(dir, 'l1'));
});

test('with allowDirs, a layer or data file outside them is refused, symlinks resolved', async (t) => {
  const { dir, c } = setup(t);
  mkdirSync(join(dir, 'ok'));
  mkdirSync(join(dir, 'other'));
  c('-f', 'raw', 'other/base.raw', '1M');
  c('-f', 'qcow2', '-b', '../other/base.raw', '-F', 'raw', 'ok/top.qcow2');
  c('-f', 'qcow2', '-o', `data_file=${join(dir, 'other/data.bin')}`, 'ok/data.qcow2', '1M');
  symlinkSync(join(dir, 'other', 'base.raw'), join(dir, 'ok', 'link.raw'));
  const allowDirs = [join(dir, 'ok')];
  await refuses(walkChain(join(dir, 'ok/top.qcow2'), { allowDirs }), 'IMAGE_OUTSIDE_ALLOWED_DIRS', join(dir, 'other/base.raw'));
  await refuses(walkChain(join(dir, 'ok/data.qcow2'), { allowDirs }), 'IMAGE_OUTSIDE_ALLOWED_DIRS', join(dir, 'other/data.bin'));
  await refuses(walkChain(join(dir, 'ok/link.raw'), { allowDirs, format: 'raw' }), 'IMAGE_OUTSIDE_ALLOWED_DIRS', join(dir, 'ok/link.raw'));
  const all = await walkChain(join(dir, 'ok/top.qcow2'), { allowDirs: [dir] });
  assert.equal(all.layers.length, 2);
});

test('an unrecorded backing format is probed only for a leaf; otherwise refused with the rebase fix', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'raw', 'base.raw', '1M');
  c('-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'mid.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'base.raw', '-F', 'raw', '-o', 'size=1M', 'leaf-ok.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'mid.qcow2', '-F', 'qcow2', '-o', 'size=1M', 'top.qcow2');
  // drop the recorded formats (qemu-img 7.2 no longer writes such overlays): rename the extension
  dropBackingFormat(join(dir, 'leaf-ok.qcow2'));
  dropBackingFormat(join(dir, 'top.qcow2'));
  const ok = await walkChain(join(dir, 'leaf-ok.qcow2'));
  assert.equal(ok.layers[0]!.backingFormat, null);
  assert.equal(ok.layers[1]!.format, 'raw');
  const err = await refuses(walkChain(join(dir, 'top.qcow2')), 'IMAGE_BACKING_FORMAT_UNKNOWN', join(dir, 'top.qcow2'));
  assert.match(err.suggestions[0]!, /qemu-img rebase -u -F qcow2 -b mid\.qcow2 .*top\.qcow2/);
});

test('a missing data file of a backing layer is named as the data file, and a failing read is IMAGE_READ_FAILED', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'qcow2', '-o', 'data_file=gone.bin', 'mid.qcow2', '1M');
  c('-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2');
  rmSync(join(dir, 'gone.bin'));
  const err = await refuses(walkChain(join(dir, 'top.qcow2')), 'IMAGE_NOT_FOUND', join(dir, 'gone.bin'));
  assert.match(err.message, /^data file .*gone\.bin \(recorded as "gone\.bin" in .*mid\.qcow2\) does not exist/);
  // fault injection: the disk returns EIO on the second read of the top layer
  const eio: ImageOpener = {
    ...nodeImageOpener,
    async open(path) {
      const src = await nodeImageOpener.open(path);
      return { ...src, size: src.size, dev: src.dev, ino: src.ino, read: async () => { throw Object.assign(new Error('EIO'), { code: 'EIO' }); }, close: () => src.close() };
    },
  };
  await refuses(walkChain(join(dir, 'top.qcow2'), { opener: eio }), 'IMAGE_READ_FAILED', join(dir, 'top.qcow2'));
});

test('a layer that is its own backing file, a directory, a FIFO or a character device is refused at once', async (t) => {
  const { dir, c } = setup(t);
  c('-f', 'qcow2', 'self.qcow2', '1M'); // qemu-img will not create a self-backed image: rebase it onto itself
  qemuImg(['rebase', '-u', '-f', 'qcow2', '-b', 'self.qcow2', '-F', 'qcow2', 'self.qcow2'], dir);
  await refuses(walkChain(join(dir, 'self.qcow2')), 'IMAGE_CHAIN_LOOP', join(dir, 'self.qcow2'));
  mkdirSync(join(dir, 'sub'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  c('-f', 'qcow2', '-u', '-b', 'sub', '-F', 'raw', '-o', 'size=1M', 'to-dir.qcow2');
  c('-f', 'qcow2', '-u', '-b', 'fifo', '-F', 'raw', '-o', 'size=1M', 'to-fifo.qcow2');
  c('-f', 'qcow2', '-u', '-b', '/dev/zero', '-F', 'raw', '-o', 'size=1M', 'to-zero.qcow2');
  await refuses(walkChain(join(dir, 'to-dir.qcow2')), 'IMAGE_NOT_A_FILE', join(dir, 'sub'));
  await refuses(walkChain(join(dir, 'to-fifo.qcow2')), 'IMAGE_NOT_A_FILE', join(dir, 'fifo')); // and does not hang opening it
  await refuses(walkChain(join(dir, 'to-zero.qcow2')), 'IMAGE_NOT_A_FILE', '/dev/zero');
  await assert.rejects(walkChain(join(dir, 'self.qcow2'), { maxDepth: Number.NaN }), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_INVALID_OPTION');
});

test('a relative backing name resolves against the directory of the overlay as named (a symlink\'s), as QEMU does', async (t) => {
  const { dir, c } = setup(t);
  mkdirSync(join(dir, 'A'));
  mkdirSync(join(dir, 'B'));
  c('-f', 'raw', 'A/base.raw', '1M');
  c('-f', 'raw', 'B/base.raw', '2M');
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'real.qcow2'], join(dir, 'B'));
  symlinkSync('../B/real.qcow2', join(dir, 'A', 'top.qcow2'));
  const chain = await walkChain(join(dir, 'A', 'top.qcow2'));
  assert.equal(chain.layers[1]!.path, join(dir, 'A', 'base.raw'));
  assert.equal(chain.layers[1]!.virtualSize, qemuChain(join(dir, 'A', 'top.qcow2'))[1]!['virtual-size']);
});
