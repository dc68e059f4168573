/** @module api/migrate-target: the target daemon of a live migration, reached over its API socket (POST /v1/migrations/incoming, then its operation). */
import { WardenError } from '../errors/index.js';
import type { MigrationAddress, MigrationTarget, NbdAddress, Operation } from '../vm/index.js';
import { ApiClient } from './client.js';

/** A MigrationTarget for the daemon on `socket`; the stream goes to `address` on that daemon's side (default 127.0.0.1; any other than loopback needs `insecureNetwork`). */
export function apiMigrationTarget(socket: string, address?: string, insecureNetwork = false): MigrationTarget {
  const client = new ApiClient(socket);
  return {
    to: socket, ...(address === undefined ? {} : { address }), ...(insecureNetwork ? { insecureNetwork } : {}),
    async prepare({ name, spec, copies }) {
      const r = await client.json<{ operation: Operation; address: MigrationAddress; nbd?: NbdAddress }>('POST', '/v1/migrations/incoming',
        { spec, name, listen: { host: address ?? '127.0.0.1', ...(insecureNetwork ? { insecure: true } : {}) }, ...(copies === undefined ? {} : { copies }) });
      return { address: r.body.address, ...(r.body.nbd === undefined ? {} : { nbd: r.body.nbd }), finish: () => finished(client, r.body.operation.id) };
    },
  };
}

/** The operation's result once it ended; its error, with the target's code, when it failed. */
async function finished(client: ApiClient, id: string): Promise<unknown> {
  for (;;) {
    const op = await client.waitOperation(id, 600);
    if (op.status === 'running') continue;
    if (op.status === 'succeeded') return op.result;
    throw new WardenError(String(op.error?.['code'] ?? 'INTERNAL'), `the target: ${String(op.error?.['message'] ?? `operation ${id} failed`)}`, { context: { operation: id } });
  }
}
