/**
 * @module cloudinit/seed: the files of a NoCloud seed (meta-data, user-data, network-config)
 * from the spec's cloudInit section, as a pure function. The instance id is a hash of
 * everything the seed says, so cloud-init runs its once-per-instance modules again exactly
 * when the section (or the key warden adds) changes.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { CloudInit, CloudInitUser } from '../spec/index.js';

export interface SeedInput {
  vm: string;
  cloudInit: CloudInit;
  /** warden's own public key, given to the first user when it has none (see needsWardenKey). */
  wardenKey?: string;
}

export interface SeedFile {
  name: 'meta-data' | 'user-data' | 'network-config';
  content: string;
}

export interface Seed {
  instanceId: string;
  files: SeedFile[];
}

/** The sudoers rule `sudo: true` stands for. */
export const SUDO_ALL = 'ALL=(ALL) NOPASSWD:ALL';

/** True when the first user has no key of its own: warden then adds its key, so `warden ssh` can log in. */
export function needsWardenKey(ci: CloudInit): boolean {
  const first = ci.users[0];
  return first !== undefined && first.sshAuthorizedKeys.length === 0;
}

export function buildSeed(input: SeedInput): Seed {
  const ci = input.cloudInit;
  const users = ci.users.map((u, i) => userEntry(u, i === 0 && needsWardenKey(ci) ? input.wardenKey : undefined));
  const instanceId = `iid-warden-${digest({ vm: input.vm, ci, users }).slice(0, 16)}`;
  const meta = stringify({ 'instance-id': instanceId, 'local-hostname': ci.hostname ?? input.vm });
  const files: SeedFile[] = [
    { name: 'meta-data', content: meta },
    { name: 'user-data', content: userData(users, ci.userData, instanceId) },
  ];
  if (ci.networkConfig !== undefined) files.push({ name: 'network-config', content: stringify(ci.networkConfig) });
  return { instanceId, files };
}

function userEntry(u: CloudInitUser, wardenKey: string | undefined): Record<string, unknown> {
  const keys = wardenKey === undefined ? u.sshAuthorizedKeys : [wardenKey];
  const entry: Record<string, unknown> = { name: u.name, shell: '/bin/bash', lock_passwd: true };
  if (keys.length > 0) entry['ssh_authorized_keys'] = keys;
  if (u.sudo !== false) entry['sudo'] = u.sudo === true ? SUDO_ALL : u.sudo;
  return entry;
}

/**
 * warden's #cloud-config alone, the raw userData alone, or both as a MIME multipart (warden's
 * part first: cloud-init's default merge lets the raw part's top-level keys win).
 */
function userData(users: Array<Record<string, unknown>>, raw: string | undefined, instanceId: string): string {
  const own = users.length === 0 ? null : `#cloud-config\n${stringify({ users })}`;
  if (raw === undefined) return own ?? '#cloud-config\n{}\n';
  if (own === null) return raw;
  let boundary = `==warden-${instanceId}==`;
  while (raw.includes(boundary)) boundary = `=${boundary}=`;
  const part = (type: string, name: string, body: string): string =>
    `--${boundary}\nContent-Type: ${type}; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n` +
    `Content-Disposition: attachment; filename="${name}"\n\n${body.endsWith('\n') ? body : `${body}\n`}`;
  const rawType = raw.startsWith('#!') ? 'text/x-shellscript' : 'text/cloud-config';
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n` +
    part('text/cloud-config', 'warden.cfg', own) + part(rawType, 'user-data', raw) + `--${boundary}--\n`;
}

/** SHA-256 of the value as JSON with object keys sorted (key order in a spec file changes nothing). */
function digest(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(sortKeys(value))).digest('hex');
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}
