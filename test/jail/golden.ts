/** @module test/jail/golden: compare generated text with test/golden/jail/<case>/<file>; UPDATE_GOLDEN=1 rewrites it. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

/** dist/test/jail → the repository's test/golden/jail. */
export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'golden', 'jail');

export function readCase(name: string, file: string): string {
  return readFileSync(join(GOLDEN_DIR, name, file), 'utf8');
}

export function assertGolden(name: string, file: string, actual: string): void {
  const path = join(GOLDEN_DIR, name, file);
  if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(path)) {
    if (process.env['UPDATE_GOLDEN'] !== '1') assert.fail(`golden file ${path} is missing; run with UPDATE_GOLDEN=1 and review it`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 to accept, then review)`);
}
