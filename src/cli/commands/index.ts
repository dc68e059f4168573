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
