import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WardenError, exitCodeFor, formatErrorChain, httpStatusFor } from './index.js';

test('the code table gives exit and HTTP statuses, most specific prefix first', () => {
  const cases: Array<[string, number, number]> = [
    ['SPEC_UNKNOWN_KEY', 2, 400], ['JAIL_INVALID_SPEC', 2, 400], ['JAIL_BUSY', 4, 409], ['JAIL_CGROUP_WRITE', 6, 500],
    ['IMAGE_CHAIN_LOOP', 3, 422], ['VM_NOT_FOUND', 5, 404], ['VM_DISK_IN_USE', 4, 409],
    ['QMP_COMMAND_FAILED', 1, 422], ['QMP_DISCONNECTED', 7, 502], ['SOMETHING_ELSE', 1, 500],
  ];
  for (const [code, exit, http] of cases) {
    const e = new WardenError(code, 'm');
    assert.deepEqual([exitCodeFor(e), httpStatusFor(e)], [exit, http], code);
  }
  assert.equal(exitCodeFor(new Error('plain')), 1);
});

test('an error may ask for its own exit status; the cause chain is printed outermost first', () => {
  const inner = Object.assign(new Error('open failed'), { code: 'ENOENT' });
  const e = new WardenError('JAIL_PROGRAM_FAILED', 'the program exited with status 42', { exitCode: 42, cause: inner });
  assert.equal(exitCodeFor(e), 42);
  assert.deepEqual(formatErrorChain(e), ['the program exited with status 42 [JAIL_PROGRAM_FAILED]', 'open failed [ENOENT]']);
  assert.deepEqual(e.toJSON(), { code: 'JAIL_PROGRAM_FAILED', message: 'the program exited with status 42', cause: { code: 'ENOENT', message: 'open failed' } });
});
