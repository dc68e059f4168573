/** @module image/policy.test: a property test of the chain policy: whatever backing name an overlay records, with allowed directories the walk never leads outside them, and only ImageError escapes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkChain, ImageError } from './index.js';
import { classifyName } from './policy.js';
import { qemuImg, tempDir } from './testing.js';

const PIECES = ['..', '.', 'sub', 'out-link', 'base.raw', 'top.qcow2', '', 'nbd:x', 'json:{}', 'a:b', 'name with space', 'ö.raw', '/etc/hostname', '/dev/null', 'fifo'];

/** A deterministic stream of recorded names built from path pieces. */
function* names(count: number): Generator<string> {
  let x = 12345;
  const next = () => { x = (x * 1103515245 + 12345) % 2 ** 31; return x; };
  for (let i = 0; i < count; i++) {
    const n = 1 + (next() % 4);
    yield Array.from({ length: n }, () => PIECES[next() % PIECES.length]).join('/');
  }
}

test('property: with allowed directories, no recorded backing name leads a walk outside them', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const root = join(tmp.dir, 'allowed');
  const outside = join(tmp.dir, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  qemuImg(['create', '-q', '-f', 'raw', join(root, 'base.raw'), '1M']);
  qemuImg(['create', '-q', '-f', 'raw', join(outside, 'base.raw'), '1M']);
  symlinkSync(outside, join(root, 'out-link'));
  // an overlay with room for a long name; each case rewrites the name and its length in place
  const top = join(root, 'top.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'x'.repeat(300), '-F', 'raw', '-o', 'size=1M', top]);
  const image = readFileSync(top);
  const nameAt = Number(image.readBigUInt64BE(8));
  const real = realpathSync(root);
  let walked = 0;
  for (const name of names(300)) {
    const buf = Buffer.from(image);
    buf.fill(0, nameAt, nameAt + 300);
    const bytes = Buffer.from(name, 'utf8').subarray(0, 300);
    bytes.copy(buf, nameAt);
    buf.writeUInt32BE(bytes.length, 16);
    writeFileSync(top, buf);
    try {
      const chain = await walkChain(top, { format: 'qcow2', allowDirs: [root], maxDepth: 8 });
      walked++;
      for (const l of chain.layers) assert.ok(realpathSync(l.path).startsWith(real + '/'), `${JSON.stringify(name)} led to ${l.path}`);
      assert.ok(chain.layers.length === 1 || classifyName(name) === 'file', name);
    } catch (err) {
      assert.ok(err instanceof ImageError, `${JSON.stringify(name)}: ${String(err)}`);
      assert.ok(err.layer !== null, `${JSON.stringify(name)}: ${err.code} without a layer`);
    }
  }
  assert.ok(walked > 0, 'some names lead to the allowed base image');
});
