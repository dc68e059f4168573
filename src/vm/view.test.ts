/** @module vm/view.test: list rows say why a VM stopped once, not twice. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from './view.js';
import type { VmRecord } from './record.js';

const rec = (lastExit: VmRecord['lastExit']): VmRecord => ({ version: 1, name: 'v', phase: 'stopped', spec: {}, createdAt: '', updatedAt: '', ...(lastExit ? { lastExit } : {}) });

test('the last exit reads "reason: detail", without repeating a reason the detail starts with', () => {
  assert.equal(summarize(rec({ reason: 'stopped', at: '', detail: 'stopped on request: the guest powered off' })).lastExit, 'stopped on request: the guest powered off');
  assert.equal(summarize(rec({ reason: 'crashed', at: '', detail: 'QEMU was killed by SIGKILL' })).lastExit, 'crashed: QEMU was killed by SIGKILL');
  assert.equal(summarize(rec(undefined)).lastExit, null);
});
