/** @module cli/commands/qmp: `warden qmp exec|events SOCKET ...`: talk to a QMP monitor directly, for debugging a running VM. */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { QmpClient, QmpEventName } from '../../qmp/index.js';
import { printJson } from '../output.js';
import type { Io } from '../output.js';

function parseArgs(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new WardenError('USAGE_BAD_JSON', `parsing the QMP arguments failed: ${JSON.stringify(text)} is not JSON`, { cause, suggestions: [`quote the object for the shell, e.g. '{"id": "disk0"}'`] });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WardenError('USAGE_BAD_JSON', 'parsing the QMP arguments failed: they must be a JSON object', { context: { arguments: text } });
  }
  return value as Record<string, unknown>;
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new WardenError('USAGE_BAD_NUMBER', `${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return n;
}

async function withClient<T>(socket: string, ms: number, fn: (c: QmpClient) => Promise<T>): Promise<T> {
  const { QmpClient } = await import('../../qmp/index.js'); // loaded by the verbs that talk QMP only (issue 16)
  const client = await QmpClient.connect({ path: socket }, { timeoutMs: ms, commandTimeoutMs: ms });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export function registerQmp(program: Command, io: Io): void {
  const qmp = program.command('qmp').description('talk to a QMP monitor socket directly (debugging)');
  qmp.command('exec')
    .description('run one QMP command and print its return value as JSON')
    .argument('<socket>', 'path of the QMP unix socket')
    .argument('<command>', 'QMP command name, e.g. query-status')
    .argument('[arguments]', 'the arguments as one JSON object')
    .option('--timeout <ms>', 'connect and command timeout', '10000')
    .option('--json', 'JSON output (always JSON; accepted for symmetry)')
    .action(async (socket: string, command: string, args: string | undefined, opts: { timeout: string }) => {
      const ms = wholeNumber('--timeout', opts.timeout);
      const parsed = parseArgs(args);
      printJson(io, await withClient(socket, ms, (c) => c.executeUntyped(command, parsed)));
    });
  qmp.command('events')
    .description('print events as JSON lines until --count events arrived; fewer by --timeout is QMP_TIMEOUT (exit 7), after printing those that came')
    .argument('<socket>', 'path of the QMP unix socket')
    .argument('[names...]', 'event names (default: all)')
    .option('--count <n>', 'stop after this many events', '1')
    .option('--timeout <ms>', 'fail (QMP_TIMEOUT, exit 7) when --count events have not arrived by then', '10000')
    .option('--json', 'JSON output (always JSON; accepted for symmetry)')
    .action(async (socket: string, names: string[], opts: { count: string; timeout: string }) => {
      const ms = wholeNumber('--timeout', opts.timeout);
      const count = wholeNumber('--count', opts.count);
      await withClient(socket, ms, async (c) => {
        const sub = names.length > 0 ? c.events(names as QmpEventName[]) : c.events('all');
        const deadline = Date.now() + ms;
        for (let i = 0; i < count; i++) io.out(JSON.stringify(await sub.next({ timeoutMs: Math.max(0, deadline - Date.now()) })));
      });
    });
}
