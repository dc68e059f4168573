import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSteps, silentProgress, type Step } from './steps.js';
import { VmError } from './errors.js';

test('a failing step undoes itself and every earlier step in reverse order', async () => {
  const log: string[] = [];
  const mk = (name: string, fail = false): Step<null> => ({
    name, label: name,
    run: async () => { log.push(`run ${name}`); if (fail) throw new VmError('VM_START_FAILED', `${name} failed`); },
    undo: async () => { log.push(`undo ${name}`); },
  });
  await assert.rejects(runSteps([mk('a'), mk('b'), mk('c', true), mk('d')], null, silentProgress), /c failed/);
  assert.deepEqual(log, ['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a']);
});

test('a failing undo is reported on the error and does not stop the other undos', async () => {
  const log: string[] = [];
  const steps: Step<null>[] = [
    { name: 'a', label: 'a', run: async () => {}, undo: async () => { log.push('undo a'); } },
    { name: 'b', label: 'b', run: async () => {}, undo: async () => { throw new Error('cannot undo b'); } },
    { name: 'c', label: 'c', run: async () => { throw new VmError('VM_START_FAILED', 'c failed'); } },
  ];
  await assert.rejects(runSteps(steps, null, silentProgress), (e: VmError) => {
    assert.deepEqual(e.context['undoFailures'], ['b: cannot undo b']);
    return true;
  });
  assert.deepEqual(log, ['undo a']);
});

test('the before hook sees each step name and can stop the run there', async () => {
  const seen: string[] = [];
  const steps: Step<null>[] = ['x', 'y', 'z'].map((n) => ({ name: n, label: n, run: async () => {} }));
  await assert.rejects(runSteps(steps, null, silentProgress, (n) => { seen.push(n); if (n === 'y') throw new Error('stop at y'); }), /stop at y/);
  assert.deepEqual(seen, ['x', 'y']);
  const r = await runSteps(steps, null, silentProgress);
  assert.deepEqual(r.done, ['x', 'y', 'z']);
});
