/** @module cli/commands/daemon: `warden daemon`: wardend in the foreground (systemd runs it so; elsewhere a supervisor or `setsid` does). */
import type { Command } from 'commander';
import type { Io } from '../output.js';

export function registerDaemon(program: Command, io: Io): void {
  program.command('daemon')
    .description('run wardend in the foreground: the REST API under /v1 on a unix socket; VMs keep running when it stops, and the next one adopts them')
    .option('--socket <path>', 'the API socket (default: $WARDEN_SOCKET, else /run/warden/warden.sock)')
    .option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .action(async (o: { socket?: string; stateDir?: string }) => {
      // Loaded here: the server (fastify) is not needed by any other command's start-up.
      const { runDaemon } = await import('../../api/server.js');
      await runDaemon({ socket: o.socket, stateDir: o.stateDir, log: (m) => io.err(`wardend: ${m}`) });
    });
}
