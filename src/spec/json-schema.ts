/** @module spec/json-schema: the editor JSON Schema, generated from the zod schema (schema/warden-v1.schema.json is its checked-in copy). */
import * as z from 'zod';
import { specSchemas } from './schema.js';

/** The JSON Schema of the spec as users write it (input side: sizes may be strings, defaults optional). */
export function specJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(specSchemas().SpecSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    $schema: schema['$schema'],
    $id: 'https://qemu-warden.invalid/schema/warden-v1.schema.json',
    title: 'qemu-warden VM spec (apiVersion warden/v1)',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}
