/**
 * @module cli/commands/ssh-target: as whom `warden ssh` logs in and how (pure): the first
 * cloud-init user, the private key whose public half cloud-init was given, ssh's options
 * and the quoting that keeps a command's argv. Where to connect is vm/endpoints' sshEndpoint.
 */
import type { CloudInit } from '../../spec/index.js';

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
