/** @module cli/commands: the list of command registrars; each capability adds its own file and one line here. */
import type { Command } from 'commander';
import type { Io } from '../output.js';
import { registerValidate } from './validate.js';
import { registerPlan } from './plan.js';
import { registerQmp } from './qmp.js';
import { registerJail } from './jail.js';
import { registerImage } from './image.js';
import { registerNet } from './net.js';
import { registerHost } from './host.js';
import { registerDemo, registerVm } from './vm.js';
import { registerDaemon } from './daemon.js';
import { registerUi } from './ui.js';
import { registerDisk } from './disk.js';
import { registerSsh } from './ssh.js';
import { registerState } from './state.js';
import { registerSnapshot } from './snapshot.js';
import { registerMigrate } from './migrate.js';
import { registerNic } from './nic.js';

export type Registrar = (program: Command, io: Io) => void;

export const registrars: Registrar[] = [
  registerValidate,
  registerPlan,
  registerQmp,
  registerJail,
  registerImage,
  registerNet,
  registerHost,
  registerVm, // after registerQmp: extends its `qmp` command with `qmp NAME COMMAND`
  registerDemo,
  registerDaemon,
  registerUi,
  registerDisk,
  registerSsh,
  registerState,
  registerSnapshot,
  registerMigrate,
  registerNic,
];

/**
 * The registrars that define each top-level command (and alias), in `registrars` order: a
 * run that names its command builds only that command instead of all ~60 (~2 ms of every
 * start; issue 16). commands/index.test checks it against what the registrars define.
 */
export const COMMAND_REGISTRARS: Readonly<Record<string, readonly Registrar[]>> = {
  validate: [registerValidate],
  plan: [registerPlan],
  qmp: [registerQmp, registerVm],
  jail: [registerJail],
  image: [registerImage],
  net: [registerNet],
  host: [registerHost],
  ...Object.fromEntries(['create', 'start', 'run', 'stop', 'kill', 'pause', 'resume', 'restart', 'delete', 'list', 'ls', 'inspect', 'console', 'logs'].map((c) => [c, [registerVm]])),
  demo: [registerDemo],
  daemon: [registerDaemon],
  events: [registerDaemon],
  ui: [registerUi],
  token: [registerUi],
  disk: [registerDisk],
  ssh: [registerSsh],
  save: [registerState],
  restore: [registerState],
  snapshot: [registerSnapshot],
  migrate: [registerMigrate],
  nic: [registerNic],
};

/**
 * The registrars a run needs: those of the command it names; none for a bare `--version`;
 * all of them otherwise (no command, `help`, an unknown command and its suggestions, an
 * option first).
 */
export function registrarsFor(argv: readonly string[]): readonly Registrar[] {
  const first = argv[0];
  if (argv.length === 1 && (first === '--version' || first === '-V')) return [];
  return (first !== undefined && Object.hasOwn(COMMAND_REGISTRARS, first) ? COMMAND_REGISTRARS[first] : undefined) ?? registrars;
}
