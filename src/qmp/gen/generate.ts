/** @module qmp/gen/generate: asks a real QEMU for its schema over our own client and renders the TypeScript types. */
import { QmpClient } from '../client.js';
import { startQemu } from '../testing/qemu.js';
import { schemaToTs } from './schema-to-ts.js';
import type { SchemaInfo } from './schema-to-ts.js';

export interface LiveSchema {
  schema: SchemaInfo[];
  /** "QEMU 7.2.22 (Debian ...)" */
  source: string;
}

/** Starts `-machine none` QEMU, reads query-qmp-schema and the version, quits it. */
export async function readLiveSchema(): Promise<LiveSchema> {
  const qemu = await startQemu();
  try {
    const client = await QmpClient.connect({ path: qemu.sockets[0]! });
    try {
      const schema = (await client.execute('query-qmp-schema')) as unknown as SchemaInfo[];
      const { qemu: v, package: pkg } = client.greeting.version;
      return { schema, source: `QEMU ${v.major}.${v.minor}.${v.micro}${pkg ? ` (${pkg.trim()})` : ''}` };
    } finally {
      await client.close();
    }
  } finally {
    await qemu.kill();
  }
}

export async function generateFromLiveQemu(): Promise<string> {
  const { schema, source } = await readLiveSchema();
  return schemaToTs(schema, { source });
}
