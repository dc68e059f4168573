/** The checked-in editor schema (schema/warden-v1.schema.json) must be what the zod schema generates now. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { specJsonSchema } from './index.js';
import { fileURLToPath } from 'node:url';

const FILE = fileURLToPath(new URL('../../../schema/warden-v1.schema.json', import.meta.url));

test('schema/warden-v1.schema.json is current (UPDATE_GOLDEN=1 regenerates)', () => {
  const now = `${JSON.stringify(specJsonSchema(), null, 2)}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(FILE)) writeFileSync(FILE, now);
  assert.equal(readFileSync(FILE, 'utf8'), now, 'the zod schema changed: run the tests with UPDATE_GOLDEN=1 and commit schema/');
});

test('the JSON Schema closes every object and requires the essentials', () => {
  const s = specJsonSchema() as { additionalProperties: unknown; required: string[]; properties: Record<string, { items?: { additionalProperties?: unknown; required?: string[] } }> };
  assert.equal(s.additionalProperties, false);
  assert.deepEqual([...s.required].sort(), ['apiVersion', 'name']);
  assert.equal(s.properties['disks']?.items?.additionalProperties, false);
  assert.deepEqual([...(s.properties['disks']?.items?.required ?? [])].sort(), ['format', 'image', 'name']);
});
