import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKOFF_MAX_MS, STABLE_RUN_MS, backoff, wantsRestart } from './restart.js';

test('restart policy: on-failure after crashes and OOM kills, always also after a guest poweroff, never after a requested stop or kill', () => {
  for (const r of ['crashed', 'oom'] as const) assert.equal(wantsRestart('on-failure', r), true);
  assert.equal(wantsRestart('on-failure', 'poweroff'), false);
  assert.equal(wantsRestart('always', 'poweroff'), true);
  for (const r of ['stopped', 'killed', 'start-failed', 'interrupted'] as const) {
    for (const p of ['never', 'on-failure', 'always', undefined] as const) assert.equal(wantsRestart(p, r), false, `${p} ${r}`);
  }
  assert.equal(wantsRestart(undefined, 'crashed'), false);
});

test('restart backoff doubles per quick failure up to the cap, and a long run resets it', () => {
  let attempt = 0;
  const delays: number[] = [];
  for (let i = 0; i < 9; i++) { const b = backoff(attempt, 10); delays.push(b.delayMs); attempt = b.attempt; }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, BACKOFF_MAX_MS, BACKOFF_MAX_MS, BACKOFF_MAX_MS]);
  assert.deepEqual(backoff(attempt, STABLE_RUN_MS), { delayMs: 1000, attempt: 1 });
});
