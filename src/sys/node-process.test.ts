/** @module sys/node-process.test: the real runner's stdin: closed after the input, or kept open for a follow-up that waits for the child's output. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeProcessRunner } from './node-process.js';

// The child echoes its first line, then waits up to 2 s for a second: `read` ends at once
// with status 1 at EOF, and `timeout` ends it with 124 while stdin stays open.
const argv = ['sh', '-c', 'read a; echo "got $a"; timeout 2 sh -c "read b && echo then \\$b"; echo "rc=$?"'];

test('input is followed by EOF by default', async () => {
  const r = await new NodeProcessRunner().run(argv, { input: 'one\n', timeoutMs: 10_000 });
  assert.equal(r.stdout, 'got one\nrc=1\n');
});

test('a follow-up is written only once the output asked for has arrived, then stdin closes', async () => {
  const seen: string[] = [];
  const r = await new NodeProcessRunner().run(argv, {
    input: 'one\n', timeoutMs: 10_000,
    followUp: { after: (out) => { seen.push(out); return out.includes('got one\n'); }, input: 'two\n' },
  });
  assert.equal(r.stdout, 'got one\nthen two\nrc=0\n');
  assert.ok(seen.length >= 1 && seen[0]!.startsWith('got one'));
});

test('a follow-up whose output never comes leaves stdin open (the child decides; here its timeout)', async () => {
  const r = await new NodeProcessRunner().run(argv, { input: 'one\n', timeoutMs: 10_000, followUp: { after: () => false, input: 'two\n' } });
  assert.equal(r.stdout, 'got one\nrc=124\n');
});
