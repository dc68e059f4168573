import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PHASES, allowedActions, assertAllowed, expectsProcess, isAllowed, phaseAfterExit } from './machine.js';
import { isVmError } from './errors.js';

test('every phase allows inspect and logs, and only live phases allow console and qmp', () => {
  for (const p of PHASES) {
    assert.ok(isAllowed(p, 'inspect') && isAllowed(p, 'logs'), p);
    assert.equal(isAllowed(p, 'console'), p === 'running' || p === 'paused', p);
    assert.equal(isAllowed(p, 'qmp'), p === 'running' || p === 'paused', p);
  }
});

test('start only from created, stopped or crashed; delete never while QEMU may live', () => {
  assert.deepEqual(PHASES.filter((p) => isAllowed(p, 'start')), ['created', 'stopped', 'crashed']);
  for (const p of PHASES) if (expectsProcess(p)) assert.ok(!isAllowed(p, 'delete'), p);
  assert.ok(isAllowed('running', 'pause') && !isAllowed('paused', 'pause'));
  assert.ok(isAllowed('paused', 'resume') && !isAllowed('running', 'resume'));
  assert.ok(isAllowed('starting', 'kill') && isAllowed('stopping', 'kill'));
});

test('VM_INVALID_STATE names the VM, the phase, the action and what is allowed', () => {
  assert.throws(() => assertAllowed('wdv-a', 'running', 'delete'), (e: unknown) => {
    assert.ok(isVmError(e, 'VM_INVALID_STATE'));
    assert.match(e.message, /cannot delete VM wdv-a: it is running/);
    assert.deepEqual(e.context['allowed'], [...allowedActions('running')]);
    assert.match(e.suggestions[0] ?? '', /warden stop wdv-a/);
    return true;
  });
  assert.doesNotThrow(() => assertAllowed('wdv-a', 'stopped', 'start'));
});

test('a crash or OOM ends in crashed, everything else in stopped', () => {
  assert.equal(phaseAfterExit('crashed'), 'crashed');
  assert.equal(phaseAfterExit('oom'), 'crashed');
  for (const r of ['poweroff', 'stopped', 'killed', 'start-failed', 'interrupted'] as const) assert.equal(phaseAfterExit(r), 'stopped');
});

test('the hint of a refused action fits it: stop of a stopped VM is not told to start it; delete of a running one learns --force', () => {
  const hintOf = (phase: Parameters<typeof assertAllowed>[1], action: Parameters<typeof assertAllowed>[2]): string => {
    try { assertAllowed('v', phase, action); } catch (e) { return (e as { suggestions: string[] }).suggestions.join(' | '); }
    return 'allowed';
  };
  assert.equal(hintOf('stopped', 'stop'), 'it is not running, nothing to stop (why it stopped: warden inspect v)');
  assert.equal(hintOf('created', 'kill'), 'it is not running, nothing to kill');
  assert.equal(hintOf('stopped', 'pause'), 'start it first: warden start v');
  assert.match(hintOf('running', 'delete'), /warden delete --force v/);
  assert.match(hintOf('paused', 'delete'), /warden delete --force v/);
  assert.equal(hintOf('running', 'start'), 'stop it first: warden stop v');
});
