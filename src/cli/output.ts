/** @module cli/output: printing results and errors, human or --json, and the one place that sets the exit status. */
import { WardenError, exitCodeFor, formatErrorChain } from '../errors/index.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (text) => { process.stdout.write(text.endsWith('\n') ? text : `${text}\n`); },
  err: (text) => { process.stderr.write(text.endsWith('\n') ? text : `${text}\n`); },
};

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}

/** Prints an error (as {error: ...} with --json) and returns the exit status for it. */
export function reportError(io: Io, err: unknown, json: boolean): number {
  if (json) {
    const body = err instanceof WardenError ? err.toJSON() : { code: 'INTERNAL', message: String((err as Error)?.message ?? err) };
    io.out(JSON.stringify({ error: body }, null, 2));
  } else {
    const [first, ...rest] = formatErrorChain(err);
    io.err(`error: ${codeOnFirstLine(first ?? 'unknown error')}`);
    for (const line of rest) io.err(`  caused by: ${line}`);
    for (const line of toolStderr(err)) io.err(`  stderr: ${line}`);
    if (err instanceof WardenError) for (const s of err.suggestions) io.err(`  hint: ${s}`);
    if (!(err instanceof WardenError) && err instanceof Error && process.env['WARDEN_DEBUG']) io.err(err.stack ?? '');
  }
  return exitCodeFor(err);
}

/**
 * What a failed helper (ip, ovs-vsctl, setpriv ...) said, kept in `context.stderr`: often the
 * only real reason ("database connection failed"), so it is shown unless the message has it.
 */
function toolStderr(err: unknown): string[] {
  if (!(err instanceof WardenError)) return [];
  const text = err.context['stderr'];
  if (typeof text !== 'string' || text.trim() === '' || err.message.includes(text.trim())) return [];
  return text.trim().split('\n').slice(-5);
}

/** "head\n  issue\n  issue [CODE]" → "head [CODE]\n  issue\n  issue": the code is the whole error's, not the last issue's. */
function codeOnFirstLine(text: string): string {
  const m = /^([^\n]*)(\n[\s\S]*) (\[[A-Z0-9_]+\])$/.exec(text);
  return m === null ? text : `${m[1]} ${m[3]}${m[2]}`;
}
