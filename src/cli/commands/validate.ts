/**
 * @module cli/commands/validate: `warden validate FILE`: every problem of a spec at once,
 * located; exit 2 when any (the steps are in spec-facts, loaded when the command runs).
 */
import type { Command } from 'commander';
import type { Io } from '../output.js';
import type { ValidateOptions } from './spec-facts.js';

export function registerValidate(program: Command, io: Io): void {
  program.command('validate')
    .description('check a VM spec: every problem at once, each with file:line:col (exit 2 when invalid, 3 when the image policy refuses a chain)')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print the result as JSON')
    .option('--no-images', 'skip opening the disk images and walking their chains (and the planner and host network checks)')
    .option('--qemu <path>', 'QEMU binary the planner checks against', '/usr/bin/qemu-system-x86_64')
    .option('--state-dir <dir>', 'state root, as for create/start (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--cache-dir <dir>', 'where QEMU capabilities are cached (default: the state root\'s cache, shared with start: $WARDEN_STATE_DIR/cache, /var/lib/warden/cache as root)')
    .action(async (file: string, opts: ValidateOptions) => { await (await import('./spec-facts.js')).validateFile(io, file, opts); });
}
