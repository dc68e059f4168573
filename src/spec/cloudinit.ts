/** @module spec/cloudinit: the `cloudInit` section (a NoCloud seed warden makes at start): hostname, users with SSH keys, raw user data, network config. */
import * as z from 'zod';
import { lazySchema, once } from './lazy.js';

/** A Linux user name as useradd (Debian's default NAME_REGEX, lower case) takes it. */
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
/** One host name label or a dotted name of them (RFC 1123), at most 63 characters in all here. */
const HOSTNAME_RE = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
/** An OpenSSH public key line: type, base64 blob, optional comment (options before the type are not taken). */
const SSH_KEY_RE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

/** The section's schemas, built on first use (spec/lazy); CloudInitSchema and CloudInitUserSchema below stand in for them. */
export const cloudInitSchemas = once(() => {
  const CloudInitUserSchema = z.strictObject({
    name: z.string().regex(USER_RE, { message: 'must be a Linux user name: a lower-case letter or _, then up to 31 of a-z 0-9 _ -' }),
    sshAuthorizedKeys: z.array(z.string().regex(SSH_KEY_RE, { message: 'must be one OpenSSH public key line, e.g. "ssh-ed25519 AAAA... me@host" (the content of a .pub file)' }))
      .max(64).default([])
      .describe('public keys for ~/.ssh/authorized_keys; when the first user has none, warden adds its own key (made in the state root) so `warden ssh` works'),
    sudo: z.union([z.boolean(), z.string().min(1).max(256).regex(/^[^\r\n]+$/, { message: 'must be one sudoers rule on one line' })])
      .default(false)
      .describe('true: passwordless sudo (ALL=(ALL) NOPASSWD:ALL); a string: that sudoers rule; false: none'),
  });

  const CloudInitSchema = z.strictObject({
    hostname: z.string().regex(HOSTNAME_RE, { message: 'must be a host name: labels of a-z 0-9 - separated by dots, 63 characters at most' })
      .optional().describe('the guest\'s host name (default: the VM name)'),
    users: z.array(CloudInitUserSchema).max(16)
      .superRefine((users, ctx) => {
        users.forEach((u, i) => {
          const first = users.findIndex((x) => x.name === u.name);
          if (first < i) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate user name ${JSON.stringify(u.name)}, already used by users[${first}]` });
        });
      })
      .default([]).describe('users cloud-init creates (the first one is `warden ssh`\'s default login)'),
    userData: z.string().max(256 * 1024)
      .refine((s) => /^#cloud-config[ \t]*(\r?\n|$)/.test(s) || s.startsWith('#!'), { message: 'must start with a "#cloud-config" line (or "#!" for a script); it is passed to cloud-init as is' })
      .optional().describe('raw user data passed through (merged after warden\'s own #cloud-config when users are given too)'),
    networkConfig: z.looseObject({ version: z.union([z.literal(1), z.literal(2)]) })
      .optional().describe('a cloud-init network configuration (version 1 or 2), written as the seed\'s network-config'),
  }).describe('a NoCloud seed (an ISO volume labelled cidata) attached read-only; the instance id changes only when this section does');
  return { CloudInitUserSchema, CloudInitSchema };
});

export const CloudInitUserSchema = lazySchema(() => cloudInitSchemas().CloudInitUserSchema);
export const CloudInitSchema = lazySchema(() => cloudInitSchemas().CloudInitSchema);

export type CloudInit = z.output<typeof CloudInitSchema>;
export type CloudInitUser = CloudInit['users'][number];
