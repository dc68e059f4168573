import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { actionIssues, formatSteps, stepsFor, type CommandOptions, type HostAction } from './index.js';

// dist/src/net → the repository root is three levels up.
const GOLDEN = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'golden', 'net');
const update = process.env['UPDATE_GOLDEN'] === '1';

function compare(dir: string, file: string, actual: string): void {
  const path = join(dir, file);
  if (update) writeFileSync(path, actual);
  assert.ok(existsSync(path), `${path} is missing: run with UPDATE_GOLDEN=1 and review it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 regenerates it)`);
}

for (const name of readdirSync(GOLDEN).sort()) {
  const dir = join(GOLDEN, name);
  test(`golden net/${name}: actions → steps and undo commands`, () => {
    const actions = JSON.parse(readFileSync(join(dir, 'actions.json'), 'utf8')) as HostAction[];
    const options = existsSync(join(dir, 'options.json')) ? JSON.parse(readFileSync(join(dir, 'options.json'), 'utf8')) as CommandOptions : {};
    const issues = actionIssues(actions);
    if (name.startsWith('invalid-')) {
      assert.ok(issues.length > 0, 'an invalid case must have issues');
      compare(dir, 'issues.json', JSON.stringify(issues, null, 2) + '\n');
    } else {
      assert.deepEqual(issues, []);
      compare(dir, 'commands.txt', formatSteps(stepsFor(actions, options), options));
    }
  });
}
