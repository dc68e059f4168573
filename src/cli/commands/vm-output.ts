/** @module cli/commands/vm-output: the lifecycle verbs' output helpers: list rows, serial log as JSON lines, QMP arguments. */
import { Writable } from 'node:stream';
import { WardenError } from '../../errors/index.js';
import type { VmService, VmSummary } from '../../vm/index.js';
import type { Io } from '../output.js';

/**
 * One row per VM. A record that cannot be read (VM_STATE_CORRUPT ...) is listed as
 * `unreadable`, with its error, and warned about: it must not hide every other VM.
 */
export async function listRows(io: Io, m: VmService): Promise<Array<VmSummary & { error?: unknown }>> {
  const rows: Array<VmSummary & { error?: unknown }> = [];
  const { summarize } = await import('../../vm/index.js'); // loaded with the service already, never at start-up
  for (const { name, record, error } of await m.list()) {
    if (record !== null) { rows.push(summarize(record)); continue; }
    const e = (error ?? { code: 'INTERNAL', message: 'unreadable' }) as { code: string; message: string; suggestions?: string[] };
    io.err(`warning: ${e.message} [${e.code}]${(e.suggestions ?? []).length > 0 ? `; ${e.suggestions!.join('; ')}` : ''}`);
    rows.push({ name, phase: 'unreadable', pid: null, uid: null, accel: null, startedAt: null, lastExit: null, forwards: null, error });
  }
  return rows;
}

/** A stream that prints each chunk of the serial log as one JSON line, with the log offset it starts at. */
export function jsonLogLines(io: Io, vm: string): NodeJS.WritableStream {
  let offset = 0;
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      io.out(JSON.stringify({ vm, offset, text: chunk.toString('utf8') }));
      offset += chunk.length;
      done();
    },
  });
}

/** The QMP arguments: one JSON object (QEMU refuses anything else, less clearly). */
export function qmpArgs(text: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(text); } catch (cause) { throw new WardenError('USAGE_BAD_JSON', `the QMP arguments are not JSON: ${text}`, { cause }); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new WardenError('USAGE_BAD_JSON', `the QMP arguments must be one JSON object, got: ${text}`, { suggestions: ['e.g. warden qmp NAME human-monitor-command \'{"command-line": "info status"}\''] });
  }
  return v as Record<string, unknown>;
}
