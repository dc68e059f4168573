/** @module cli/commands/ssh: `warden ssh NAME [-i KEY] [-l USER] [-- COMMAND...]`: /usr/bin/ssh to the guest through its forward to port 22. */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WardenError } from '../../errors/index.js';
import type { CloudInit } from '../../spec/index.js';
import type { Io } from '../output.js';
import { chooseIdentity, defaultUser, shellQuote, sshOptions } from './ssh-target.js';

const SSH = '/usr/bin/ssh';

interface SshOpts { stateDir?: string; identity?: string; login?: string }

/** The invoking user's usual key pairs (~/.ssh/id_*), to find the one cloud-init was given. */
function userKeys(): Array<{ identity: string; publicKey: string }> {
  const dir = join(homedir(), '.ssh');
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].flatMap((n) => {
    const identity = join(dir, n);
    try { return existsSync(identity) ? [{ identity, publicKey: readFileSync(`${identity}.pub`, 'utf8') }] : []; } catch { return []; }
  });
}

async function sshTo(io: Io, name: string, command: string[], o: SshOpts): Promise<void> {
  // Loaded when ssh runs, not at every command's start-up (issue 16).
  const [{ spawn }, { readWardenKey }, { openManager, sshEndpoint }] = await Promise.all([
    import('node:child_process'), import('../../cloudinit/index.js'), import('../../vm/index.js'),
  ]);
  const m = openManager({ stateDir: o.stateDir });
  const rec = await m.reconcile(name);
  if (rec.phase !== 'running') {
    throw new WardenError('VM_INVALID_STATE', `cannot ssh to VM ${name}: it is ${rec.phase}`, { context: { vm: name, phase: rec.phase }, suggestions: [`start it: warden start ${name}`] });
  }
  // The forwards as they run (host: 0 resolved at start); guest-agent addresses are not asked for yet.
  const ep = sshEndpoint(rec);
  if (ep === null) {
    throw new WardenError('USAGE_NO_SSH_ROUTE', `VM ${name} has no way in for ssh: no user network forwards a host port to guest port 22`, {
      context: { vm: name },
      suggestions: ['add to a user network: forwards: [{ host: 0, guest: 22 }] (a free port is chosen at start; then delete and create the VM again)'],
    });
  }
  const ci = rec.spec['cloudInit'] as CloudInit | undefined;
  const user = o.login ?? defaultUser(ci);
  const wardenKey = (await readWardenKey(m.store.root)) ?? undefined;
  const identity = o.identity ?? chooseIdentity(ci, user, userKeys(), wardenKey);
  if (o.identity === undefined && identity !== undefined && identity === wardenKey?.identity) io.err(`warden ssh: using warden's key ${identity}`);
  // `--` before the host ends ssh's options; the command's words are quoted so the guest's shell sees this argv.
  const argv = [...sshOptions(join(m.store.paths(name).dir, 'known_hosts'), name, identity), '-p', String(ep.port),
    ...(user === undefined ? [] : ['-l', user]), '--', ep.host, ...command.map(shellQuote)];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(SSH, argv, { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (c, sig) => resolve(c ?? (sig === null ? null : 128)));
  }).catch((cause: unknown) => { throw new WardenError('HOST_SSH_MISSING', `running ${SSH} failed`, { cause, suggestions: ['install openssh-client'] }); });
  if (code !== 0) {
    throw new WardenError('SSH_EXIT', `ssh to VM ${name} (${ep.host}:${ep.port}) exited with status ${String(code)}`, {
      context: { vm: name, argv: [SSH, ...argv], via: ep.via }, exitCode: code ?? 1,
      ...(code === 255 ? { suggestions: ['255 is ssh\'s own failure: is the guest up and sshd running? (warden logs NAME shows its console)'] } : {}),
    });
  }
}

export function registerSsh(program: Command, io: Io): void {
  program.command('ssh')
    .description('ssh to a running VM through its user-network forward to port 22 (a known_hosts file per VM; no agent forwarding)')
    .argument('<name>', 'the VM')
    .argument('[command...]', 'a command to run instead of a shell (after --)')
    .option('-i, --identity <key>', 'private key (default: the one whose public key cloud-init was given, or warden\'s own)')
    .option('-l, --login <user>', 'user to log in as (default: the first cloudInit user)')
    .option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .action(async (name: string, command: string[], o: SshOpts) => { await sshTo(io, name, command, o); });
}
