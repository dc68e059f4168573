/** warden host check: the report's shape, the host image policy it read ($WARDEN_POLICY), and exit 6 when the policy file is broken. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../index.js';
import type { HostCheckReport } from './host.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('host check reports the uid range, its collisions, the host image policy and Landlock; a broken policy file exits 6', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-host-'));
  const saved = process.env['WARDEN_POLICY'];
  t.after(() => { if (saved === undefined) delete process.env['WARDEN_POLICY']; else process.env['WARDEN_POLICY'] = saved; rmSync(dir, { recursive: true, force: true }); });
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, 'imageDirs: [/srv/base-images]\n');
  process.env['WARDEN_POLICY'] = file;
  let io = capture();
  const code = await run(['host', 'check', '--json'], io);
  assert.ok(code === 0 || code === 6, `exit ${code}: ${io.stdout}${io.stderr}`);
  const out = JSON.parse(io.stdout) as HostCheckReport | { error: { code: string; context: { report: HostCheckReport } } };
  const r = 'error' in out ? out.error.context.report : out;
  assert.equal(code, r.problems.length === 0 ? 0 : 6, `${io.stdout}${io.stderr}`);
  assert.deepEqual(r.imagePolicy, { file, imageDirs: ['/srv/base-images'], present: true });
  assert.equal(r.uidRange.last - r.uidRange.first + 1, 10000);
  assert.ok(Number.isInteger(r.landlockAbi));
  writeFileSync(file, 'imageDirs: relative\n');
  assert.equal(await run(['host', 'check'], io = capture()), 6, `${io.stdout}${io.stderr}`);
  assert.match(io.stdout, new RegExp(`image policy ${file}: the host image policy .* is invalid`));
  assert.match(io.stderr, /\[HOST_CHECK_FAILED\]/);
});
