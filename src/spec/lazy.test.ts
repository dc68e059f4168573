/** spec/lazy: a schema stand-in builds its schema on first use and then behaves as it (parse, compose, instanceof, keys, JSON Schema description). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as z from 'zod';
import { lazySchema, once } from './lazy.js';
import { DiskLimitsSchema, DiskSchema, SpecSchema } from './index.js';
import { specSchemas } from './schema.js';

test('once builds on the first call only', () => {
  let n = 0;
  const f = once(() => ++n);
  assert.equal(n, 0);
  assert.equal(f(), 1);
  assert.equal(f(), 1);
  assert.equal(n, 1);
});

test('a stand-in is built on first use and parses, composes and converts as its schema', () => {
  let built = 0;
  const lazy = lazySchema(() => { built++; return z.strictObject({ a: z.int().min(1) }).describe('an a'); });
  assert.equal(built, 0, 'nothing built at definition');
  assert.deepEqual(lazy.safeParse({ a: 2 }), { success: true, data: { a: 2 } });
  assert.equal(built, 1);
  assert.equal(lazy.safeParse({ a: 0 }).success, false);
  assert.equal(lazy.safeParse({ a: 1, b: 1 }).success, false, 'strict');
  assert.ok(lazy instanceof z.ZodObject);
  assert.deepEqual(Object.keys(lazy.shape), ['a']);
  assert.equal(z.object({ x: lazy.optional() }).safeParse({}).success, true);
  assert.equal(z.toJSONSchema(lazy)['description'], 'an a');
  assert.equal(built, 1);
});

test('the spec exports are stand-ins for the schemas the spec module uses', () => {
  assert.deepEqual(z.toJSONSchema(SpecSchema, { io: 'input', unrepresentable: 'any' }), z.toJSONSchema(specSchemas().SpecSchema, { io: 'input', unrepresentable: 'any' }));
  assert.equal(z.toJSONSchema(DiskLimitsSchema, { io: 'input' })['description'], 'I/O limits (a QEMU throttle group of its own); changeable while the VM runs (warden disk limits)');
  const disk = { name: 'root', image: 'a.qcow2', format: 'qcow2', limits: { bps: '10Mi' } };
  assert.deepEqual(DiskSchema.safeParse(disk), specSchemas().DiskSchema.safeParse(disk));
  assert.equal(DiskSchema.safeParse({ ...disk, limits: {} }).success, false);
});
