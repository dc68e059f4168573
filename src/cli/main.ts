/** @module cli/main: argv → command; the only place that sets process.exitCode. */
import { Command, CommanderError } from 'commander';
import { registrarsFor } from './commands/index.js';
import { processIo, reportError, type Io } from './output.js';

/**
 * Builds the program; commands signal failure by throwing, and `run` maps that to an exit
 * status. With `argv`, only the command it names (see registrarsFor); without, all of them.
 */
export function buildProgram(io: Io, argv?: readonly string[]): Command {
  const program = new Command('warden')
    .description('Run QEMU virtual machines jailed: every resource planned, opened by the manager and passed as an fd')
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const register of registrarsFor(argv ?? [])) register(program, io);
  return program;
}

/** Runs one CLI invocation and returns its exit status (never calls process.exit). */
export async function run(argv: string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io, argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      // commander has printed its message on stderr; a --json caller reads stdout
      if (argv.includes('--json')) io.out(JSON.stringify({ error: { code: 'USAGE_ARGS', message: err.message.replace(/^error: /, ''), context: { commander: err.code } } }, null, 2));
      return 2;
    }
    return reportError(io, err, argv.includes('--json'));
  }
}
