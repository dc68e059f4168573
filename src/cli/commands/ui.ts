/** @module cli/commands/ui: `warden ui --url` (a one-time login URL for the web console) and `warden token create|list|revoke` (bearer tokens for the HTTPS API), asked of the daemon on its unix socket, so both are bound to the caller's uid. */
import type { Command } from 'commander';
import { ApiError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import { WardenError } from '../../errors/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

const STATE_HELP = 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)';

/** The daemon's client, or DAEMON_UNAVAILABLE: login URLs and tokens exist only where wardend serves HTTPS. */
async function daemon(stateDir: string | undefined): Promise<ApiClient> {
  // Loaded here, not at start-up: only these commands talk to the daemon's other routes.
  const [svc, { RemoteService }] = await Promise.all([openService({ stateDir }), import('../../api/remote.js')]);
  if (!(svc instanceof RemoteService)) {
    throw new ApiError('DAEMON_UNAVAILABLE', `no daemon serves ${svc.stateRoot}: the web console and tokens are wardend's`, { suggestions: ['start it: warden daemon --http 127.0.0.1:8443'] });
  }
  return svc.client;
}

/** A 404 from the daemon's unix socket here means it runs without --http. */
async function ask<T>(client: ApiClient, method: string, path: string, body?: unknown): Promise<T> {
  try {
    return (await client.json<T>(method, path, body)).body;
  } catch (err) {
    if (err instanceof WardenError && err.code === 'API_NOT_FOUND') {
      throw new ApiError('DAEMON_UNAVAILABLE', 'the daemon serves no HTTPS listener', { suggestions: ['restart it with --http 127.0.0.1:8443'] });
    }
    throw err;
  }
}

export function registerUi(program: Command, io: Io): void {
  program.command('ui')
    .description('the web console: --url prints a login URL for you (valid once, for a minute)')
    .option('--url', 'print a one-time login URL')
    .option('--json', 'print {url, expiresAt, uid, role, certificate}')
    .option('--state-dir <dir>', STATE_HELP)
    .action(async (o: { url?: boolean; json?: boolean; stateDir?: string }) => {
      const r = await ask<{ url: string; expiresAt: string; certificate: { sha256: string; source: string } }>(await daemon(o.stateDir), 'POST', '/v1/ui/login', {});
      if (o.json === true) return printJson(io, r);
      io.out(r.url);
      if (o.url !== true) io.err(`open it within a minute (once); the certificate is ${r.certificate.source}, sha256 ${r.certificate.sha256}`);
    });
  const token = program.command('token').description('bearer tokens for the HTTPS API (Authorization: Bearer TOKEN)');
  token.command('create')
    .description('make a token for you; it is shown once')
    .option('--name <name>', 'what it is for', 'token')
    .option('--json', 'print {id, name, uid, role, createdAt, token}')
    .option('--state-dir <dir>', STATE_HELP)
    .action(async (o: { name: string; json?: boolean; stateDir?: string }) => {
      const t = await ask<{ id: string; token: string }>(await daemon(o.stateDir), 'POST', '/v1/tokens', { name: o.name });
      if (o.json === true) printJson(io, t);
      else { io.out(t.token); io.err(`token ${t.id}: keep it secret; revoke with: warden token revoke ${t.id}`); }
    });
  token.command('list')
    .description('your tokens (all of them for admins), without their secrets')
    .option('--json', 'print the list as JSON')
    .option('--state-dir <dir>', STATE_HELP)
    .action(async (o: { json?: boolean; stateDir?: string }) => {
      const r = await ask<{ tokens: Array<{ id: string; name: string; uid: number; role: string; createdAt: string }> }>(await daemon(o.stateDir), 'GET', '/v1/tokens');
      if (o.json === true) return printJson(io, r.tokens);
      io.out(['ID            UID    ROLE   CREATED                   NAME', ...r.tokens.map((t) => `${t.id}  ${String(t.uid).padEnd(5)}  ${t.role.padEnd(5)}  ${t.createdAt.padEnd(24)}  ${t.name}`)].join('\n'));
    });
  token.command('revoke')
    .description('remove a token: it stops working at once')
    .argument('<id>', 'the token id (warden token list)')
    .option('--state-dir <dir>', STATE_HELP)
    .action(async (id: string, o: { stateDir?: string }) => {
      await ask(await daemon(o.stateDir), 'DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      io.out(`revoked ${id}`);
    });
}
