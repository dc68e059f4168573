/**
 * @module cli/commands/ssh-target: where `warden ssh` connects and as whom, from a VM's
 * spec (pure): the host end of a user-network forward to guest port 22, the first
 * cloud-init user, and the private key whose public half cloud-init was given.
 */
import type { CloudInit } from '../../spec/index.js';

export interface SshEndpoint {
  host: string;
  port: number;
  /** The spec field it came from, for messages. */
  from: string;
}

interface ForwardView { proto?: string; host: number; guest: number; hostAddress?: string }
interface NetworkView { name: string; type: string; forwards?: ForwardView[] }

/**
 * The first TCP forward to guest port 22 on a user network. `recordedPorts` maps
 * "networks[i].forwards[j]" to the port chosen at start for a forward written `host: 0`.
 */
export function sshEndpoint(spec: Record<string, unknown>, recordedPorts: Record<string, number> = {}): SshEndpoint | null {
  const networks = (spec['networks'] ?? []) as NetworkView[];
  for (const [i, n] of networks.entries()) {
    if (n.type !== 'user') continue;
    for (const [j, f] of (n.forwards ?? []).entries()) {
      if ((f.proto ?? 'tcp') !== 'tcp' || f.guest !== 22) continue;
      const from = `networks[${i}].forwards[${j}]`;
      const port = f.host === 0 ? recordedPorts[from] : f.host;
      if (port === undefined || port === 0) continue;
      // A forward listening on every address is reached on loopback.
      const host = f.hostAddress === undefined || f.hostAddress === '0.0.0.0' ? '127.0.0.1' : f.hostAddress;
      return { host, port, from };
    }
  }
  return null;
}

/** The default login: the first cloud-init user, if any. */
export function defaultUser(ci: CloudInit | undefined): string | undefined {
  return ci?.users[0]?.name;
}

/** "type base64" of a public key line (the comment does not identify a key). */
function keyId(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

/**
 * The identity file for `user`: the candidate whose public key cloud-init gave that user
 * (warden's own key counts when it was added because the user had none). Undefined when
 * no candidate matches: ssh then tries its own defaults and the agent.
 */
export function chooseIdentity(ci: CloudInit | undefined, user: string | undefined, candidates: ReadonlyArray<{ identity: string; publicKey: string }>, wardenKey?: { identity: string; publicKey: string }): string | undefined {
  const idx = ci?.users.findIndex((u) => u.name === user) ?? -1;
  if (ci === undefined || idx < 0) return undefined;
  const u = ci.users[idx]!;
  if (idx === 0 && u.sshAuthorizedKeys.length === 0) return wardenKey?.identity;
  const given = new Set(u.sshAuthorizedKeys.map(keyId));
  const all = wardenKey === undefined ? candidates : [wardenKey, ...candidates];
  return all.find((c) => given.has(keyId(c.publicKey)))?.identity;
}

/** ssh's options: a known_hosts file of this VM only, no agent or X11 forwarding, quiet about first contact. */
export function sshOptions(knownHosts: string, vm: string, identity: string | undefined): string[] {
  const o = (s: string): string[] => ['-o', s];
  return [
    ...o(`UserKnownHostsFile=${knownHosts}`), ...o('GlobalKnownHostsFile=/dev/null'), ...o('StrictHostKeyChecking=accept-new'),
    // The VM's name, not 127.0.0.1:PORT, names its host key: forwarded ports get reused by other VMs.
    ...o(`HostKeyAlias=warden-${vm}`), ...o('HashKnownHosts=no'), ...o('ForwardAgent=no'), ...o('ForwardX11=no'), ...o('ConnectTimeout=15'), ...o('LogLevel=ERROR'),
    ...(identity === undefined ? [] : ['-i', identity, ...o('IdentitiesOnly=yes')]),
  ];
}

/** One word for a POSIX shell: as is when plainly safe, else single-quoted (ssh hands the remote shell one string). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:,+@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
