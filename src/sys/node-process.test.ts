/** @module sys/node-process.test: the real runner's stdin: closed after the input, or kept open until the child exits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeProcessRunner } from './node-process.js';

// The child reads its first line, then waits up to 0.5 s for more: `read` ends at once with
// status 1 at EOF, and `timeout` ends it with 124 while stdin stays open.
const argv = ['sh', '-c', 'read a; echo "got $a"; timeout 0.5 sh -c "read b"; echo "rc=$?"'];

test('input is followed by EOF by default', async () => {
  const r = await new NodeProcessRunner().run(argv, { input: 'one\n', timeoutMs: 10_000 });
  assert.equal(r.stdout, 'got one\nrc=1\n');
});

test('keepStdinOpen leaves stdin open after the input until the child exits (QEMU drops queued QMP requests at EOF)', async () => {
  const r = await new NodeProcessRunner().run(argv, { input: 'one\n', timeoutMs: 10_000, keepStdinOpen: true });
  assert.equal(r.stdout, 'got one\nrc=124\n');
  assert.equal(r.code, 0);
});
