/** @module test/net/child: entry point run inside a netns: imports a scenario module, calls one function, prints its JSON result. */
import { pathToFileURL } from 'node:url';

const [modPath, fn, argJson] = process.argv.slice(2);
try {
  const mod = (await import(pathToFileURL(modPath!).href)) as Record<string, (a: unknown) => Promise<unknown>>;
  const f = mod[fn!];
  if (typeof f !== 'function') throw new Error(`no scenario ${fn}`);
  const value = await f(JSON.parse(argJson ?? 'null'));
  process.stdout.write('\n' + JSON.stringify({ ok: true, value }) + '\n');
} catch (e) {
  const err = e as { message?: string; code?: string; context?: unknown; stack?: string; cause?: unknown };
  process.stderr.write(String(err.stack ?? e) + '\n');
  if (err.cause !== undefined) process.stderr.write(`caused by: ${String((err.cause as Error)?.stack ?? err.cause)}\n`);
  process.stdout.write('\n' + JSON.stringify({ ok: false, error: { message: err.message, code: err.code, context: err.context } }) + '\n');
}
