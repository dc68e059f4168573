import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../sys/index.js';
import { classifyExit, fromStatusCode, sawOomKill } from './exit.js';

test('exit facts map to reasons: poweroff, stopped, killed, crashed with the signal, oom', () => {
  assert.deepEqual(fromStatusCode(137), { code: null, signal: 'SIGKILL' });
  assert.deepEqual(fromStatusCode(1), { code: 1, signal: null });
  assert.equal(classifyExit({ exit: { code: 0, signal: null } }).reason, 'poweroff');
  assert.equal(classifyExit({ exit: { code: 0, signal: null }, intent: 'stop' }).reason, 'stopped');
  assert.equal(classifyExit({ exit: fromStatusCode(137), intent: 'stop', escalated: true }).reason, 'killed');
  assert.equal(classifyExit({ exit: fromStatusCode(137), intent: 'kill' }).reason, 'killed');
  const crash = classifyExit({ exit: fromStatusCode(137) });
  assert.equal(crash.reason, 'crashed');
  assert.match(crash.detail, /SIGKILL/);
  assert.match(classifyExit({ exit: { code: 1, signal: null } }).detail, /status 1/);
  assert.match(classifyExit({ exit: null }).detail, /unknown/);
  assert.equal(classifyExit({ exit: fromStatusCode(137), oomKilled: true, intent: 'stop' }).reason, 'oom');
});

test('OOM kills are read from v2 memory.events and v1 memory.oom_control', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-oom-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fs = new NodeFs(dir);
  mkdirSync(join(dir, 'v2'), { recursive: true });
  mkdirSync(join(dir, 'v1'), { recursive: true });
  writeFileSync(join(dir, 'v2/memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n');
  writeFileSync(join(dir, 'v1/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
  assert.equal(await sawOomKill(fs, ['/v2', '/v1', '/missing']), false);
  writeFileSync(join(dir, 'v1/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
  assert.equal(await sawOomKill(fs, ['/v2', '/v1']), true);
});
