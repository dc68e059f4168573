/** `warden jail` through the CLI: the list verb and usage errors (launching is tested in src/jail). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../index.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('warden jail --list says "no jails" when there are none (JSON: []); no --spec is a usage error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-jail-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const where = ['--state-dir', join(dir, 'state'), '--runtime-dir', join(dir, 'run')];
  let io = capture();
  assert.equal(await run(['jail', '--list', ...where], io), 0, io.stderr);
  assert.equal(io.stdout, 'no jails\n');
  assert.equal(await run(['jail', '--list', '--json', ...where], io = capture()), 0, io.stderr);
  assert.deepEqual(JSON.parse(io.stdout), []);
  assert.equal(await run(['jail', ...where], io = capture()), 2);
  assert.match(io.stderr, /--spec FILE is required/);
});
