/**
 * The broken-spec corpus (test/specs/broken/*.yaml): each file names its expected issue in
 * its first line (`# expect: CODE LINE:COL [PATH]`); `warden validate` must report it there
 * and exit 2, as JSON and as text, never with a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';

const CORPUS = new URL('../../../test/specs/broken/', import.meta.url).pathname;
const files = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).sort();

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
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
  for (const f of files) {
    await t.test(f, async () => {
      const want = expectation(f);
      const io = capture();
      assert.equal(await run(['validate', join(dir, f), '--json'], io), 2, io.stdout);
      const body = JSON.parse(io.stdout) as { error: { code: string; context: { issues: Array<Expect & { message: string }> } } };
      const issues = body.error.context.issues;
      const hit = issues.find((i) => i.code === want.code && i.line === want.line && i.col === want.col && i.path === want.path);
      assert.ok(hit, `expected ${want.code} at ${want.line}:${want.col} ${want.path}; got ${JSON.stringify(issues.map((i) => `${i.code} ${i.line}:${i.col} ${i.path}: ${i.message}`))}`);
      const text = capture();
      assert.equal(await run(['validate', join(dir, f)], text), 2);
      assert.match(text.stderr, /^error: spec .* is invalid/);
      assert.match(text.stderr, new RegExp(`:${want.line}:${want.col}: `));
      assert.doesNotMatch(text.stderr, /\n\s+at /, 'no stack trace');
    });
  }
});
