/** @module cli/commands/daemon: `warden daemon` (wardend in the foreground; systemd runs it so, elsewhere `setsid`) and `warden events` (its event stream). */
import type { Command } from 'commander';
import { ApiError } from '../../api/errors.js';
import type { Io } from '../output.js';
import { openService } from './route.js';

function eventLine(e: Record<string, unknown>): string {
  const what = [e['reason'], e['signal'], e['detail']].filter((x) => typeof x === 'string' && x !== '').join(': ');
  return [e['time'] ?? '', e['type'], e['vm'] ?? '-', what].join('  ').trimEnd();
}

export function registerDaemon(program: Command, io: Io): void {
  program.command('daemon')
    .description('run wardend in the foreground: the REST API under /v1 on a unix socket; VMs keep running when it stops, and the next one adopts them')
    .option('--socket <path>', 'the API socket (default: $WARDEN_SOCKET, else /run/warden/warden.sock)')
    .option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--http <addr:port>', 'also serve the API and the web console over HTTPS here (loopback: a self-signed certificate kept in STATE/tls; other addresses need --tls-cert/--tls-key)')
    .option('--tls-cert <file>', 'PEM certificate for --http')
    .option('--tls-key <file>', 'PEM private key for --http')
    .action(async (o: { socket?: string; stateDir?: string; http?: string; tlsCert?: string; tlsKey?: string }) => {
      // Loaded here: the server (fastify) is not needed by any other command's start-up.
      const { runDaemon } = await import('../../api/server.js');
      const http = o.http === undefined ? undefined : { listen: o.http, tlsCert: o.tlsCert, tlsKey: o.tlsKey };
      await runDaemon({ socket: o.socket, stateDir: o.stateDir, http, log: (m) => io.err(`wardend: ${m}`) });
    });
  program.command('events')
    .description('follow the events of the daemon that serves the state root (started, stopped with its reason, paused ...)')
    .option('--vm <names>', 'only these VMs (comma-separated)')
    .option('--type <types>', 'only these event types (comma-separated)')
    .option('--count <n>', 'stop after n events')
    .option('--json', 'one JSON object per line')
    .option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .action(async (o: { vm?: string; type?: string; count?: string; json?: boolean; stateDir?: string }) => {
      const [svc, { RemoteService }] = await Promise.all([openService({ stateDir: o.stateDir }), import('../../api/remote.js')]);
      if (!(svc instanceof RemoteService)) {
        throw new ApiError('DAEMON_UNAVAILABLE', `no daemon serves ${svc.stateRoot}: events are published by wardend`, { suggestions: ['start it: warden daemon'] });
      }
      let left = o.count === undefined ? Infinity : Number(o.count);
      const follow = svc.client.events({ ...(o.vm ? { vm: o.vm.split(',') } : {}), ...(o.type ? { type: o.type.split(',') } : {}) }, (e) => {
        io.out(o.json === true ? JSON.stringify(e) : eventLine(e as unknown as Record<string, unknown>));
        if (--left <= 0) follow.stop();
      });
      await follow.done;
    });
}
