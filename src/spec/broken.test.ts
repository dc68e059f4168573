/**
 * The broken-spec corpus (test/specs/broken/*.yaml): each file names its expected issue in
 * its first line (`# expect: CODE LINE:COL [PATH]`); `warden validate` must report it there
 * and exit 2, as JSON and as text, never with a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';
import { fileURLToPath } from 'node:url';

const CORPUS = fileURLToPath(new URL('../../../test/specs/broken/', import.meta.url));
const files = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).sort();

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

function img(...args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stderr}`);
}

/**
 * Chains the image policy refuses, made with qemu-img: a loop, a json: and an nbd: backing,
 * a missing layer, and a backing without a recorded format over a layer that has a
 * backing itself (qemu-img no longer writes that, so the header fields are set by hand).
 */
function makeRefusedChains(dir: string): void {
  mkdirSync(dir);
  const at = (f: string) => join(dir, f);
  for (const f of ['loop', 'json', 'nbd', 'gone', 'nofmt']) img('create', '-q', '-f', 'qcow2', at(`${f}.qcow2`), '16M');
  img('rebase', '-q', '-u', '-b', 'loop.qcow2', '-F', 'qcow2', at('loop.qcow2'));
  img('rebase', '-q', '-u', '-b', 'json:{"driver":"file","filename":"/etc/shadow"}', '-F', 'raw', at('json.qcow2'));
  img('rebase', '-q', '-u', '-b', 'nbd://127.0.0.1/x', '-F', 'raw', at('nbd.qcow2'));
  img('rebase', '-q', '-u', '-b', 'missing.qcow2', '-F', 'qcow2', at('gone.qcow2'));
  img('create', '-q', '-f', 'qcow2', at('base.qcow2'), '16M');
  img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', at('mid.qcow2'));
  const name = Buffer.from('mid.qcow2');
  const hdr = Buffer.alloc(12);
  hdr.writeBigUInt64BE(4096n, 0); // backing_file_offset: inside the header cluster, past the extensions
  hdr.writeUInt32BE(name.length, 8); // backing_file_size
  const fd = openSync(at('nofmt.qcow2'), 'r+');
  try { writeSync(fd, hdr, 0, 12, 8); writeSync(fd, name, 0, name.length, 4096); } finally { closeSync(fd); }
}

interface Expect { code: string; line: number; col: number; path: string }

function expectation(file: string): Expect {
  const m = /^# expect: (\S+) (\d+):(\d+)(?: (\S+))?/.exec(readFileSync(join(CORPUS, file), 'utf8'));
  assert.ok(m, `${file} lacks its "# expect:" line`);
  return { code: m[1]!, line: Number(m[2]), col: Number(m[3]), path: m[4] ?? '' };
}

test('the broken corpus has at least 40 specs', () => { assert.ok(files.length >= 40, `${files.length}`); });

test('every broken spec gives its located error and exit 2', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-broken-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(CORPUS, dir, { recursive: true });
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'ok.qcow2'), '16M']);
  if (r.status !== 0) { t.skip('qemu-img missing'); return; }
  makeRefusedChains(join(dir, 'chains'));
  for (const f of files) {
    await t.test(f, async () => {
      const want = expectation(f);
      const io = capture();
      const cache = ['--cache-dir', join(dir, 'cache')];
      assert.equal(await run(['validate', join(dir, f), '--json', ...cache], io), 2, io.stdout);
      const body = JSON.parse(io.stdout) as { error: { code: string; context: { issues: Array<Expect & { message: string }> } } };
      const issues = body.error.context.issues;
      const hit = issues.find((i) => i.code === want.code && i.line === want.line && i.col === want.col && i.path === want.path);
      assert.ok(hit, `expected ${want.code} at ${want.line}:${want.col} ${want.path}; got ${JSON.stringify(issues.map((i) => `${i.code} ${i.line}:${i.col} ${i.path}: ${i.message}`))}`);
      const text = capture();
      assert.equal(await run(['validate', join(dir, f), ...cache], text), 2);
      assert.match(text.stderr, /^error: spec .* is invalid/);
      assert.match(text.stderr, new RegExp(`:${want.line}:${want.col}: `));
      assert.doesNotMatch(text.stderr, /\n\s+at /, 'no stack trace');
    });
  }
});
