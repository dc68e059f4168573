import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaToTs } from './schema-to-ts.js';
import type { SchemaInfo } from './schema-to-ts.js';
import { readLiveSchema } from './generate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const golden = join(root, 'test', 'golden', 'qmp', 'mini-schema');

test('renders a small schema (unions, alternates, recursion, features, open device_add) as the golden file', () => {
  const schema = JSON.parse(readFileSync(join(golden, 'schema.json'), 'utf8')) as SchemaInfo[];
  const text = schemaToTs(schema, { source: 'a test schema' });
  const expectedPath = join(golden, 'expected.ts.golden');
  if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(expectedPath)) writeFileSync(expectedPath, text);
  assert.equal(text, readFileSync(expectedPath, 'utf8'));
  assert.equal(schemaToTs([...schema].reverse(), { source: 'a test schema' }), text, 'output does not depend on schema order');
});

test('the checked-in generated/qapi.ts is what the installed QEMU produces', async (t) => {
  const checkedIn = readFileSync(join(root, 'src', 'qmp', 'generated', 'qapi.ts'), 'utf8');
  const { schema, source } = await readLiveSchema();
  if (!checkedIn.includes(`of ${source}.`)) return t.skip(`installed ${source} is not the QEMU the file was generated from`);
  assert.equal(schemaToTs(schema, { source }), checkedIn, 'run `npm run gen:qmp` and review the diff');
});
