/**
 * @module cloudinit/keys: warden's own SSH key pair in the state root (ssh/id_ed25519),
 * made with ssh-keygen the first time a cloud-init user needs one. Concurrent starts
 * agree on one key: it is made under a temporary name and linked into place, and a
 * loser of that race uses the winner's.
 */
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessRunner } from '../sys/index.js';
import { CloudInitError } from './errors.js';

export interface WardenKey {
  /** The private key's path (ssh -i). */
  identity: string;
  /** The public key line. */
  publicKey: string;
  /** True when this call made it. */
  created: boolean;
}

/** Where warden's key lives under a state root. */
export function wardenKeyPath(stateRoot: string): string {
  return join(stateRoot, 'ssh', 'id_ed25519');
}

/** The key if it exists, else null. */
export async function readWardenKey(stateRoot: string): Promise<WardenKey | null> {
  const identity = wardenKeyPath(stateRoot);
  if (!existsSync(identity) || !existsSync(`${identity}.pub`)) return null;
  const publicKey = (await readFile(`${identity}.pub`, 'utf8')).trim();
  return { identity, publicKey, created: false };
}

export async function ensureWardenKey(stateRoot: string, runner: ProcessRunner): Promise<WardenKey> {
  const have = await readWardenKey(stateRoot);
  if (have !== null) return have;
  const identity = wardenKeyPath(stateRoot);
  const dir = join(stateRoot, 'ssh');
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = await mkdtemp(join(dir, '.new-'));
    try {
      const r = await runner.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'qemu-warden', '-f', join(tmp, 'key')], { timeoutMs: 30_000 });
      if (r.code !== 0) throw new Error(r.stderr.trim() || `ssh-keygen exited ${String(r.code)}`);
      // The public half first: whoever links the private key wins, and its .pub must be there by then.
      await rename(join(tmp, 'key.pub'), `${identity}.pub.${process.pid}`);
      try {
        await link(join(tmp, 'key'), identity);
        await rename(`${identity}.pub.${process.pid}`, `${identity}.pub`);
      } catch (err) {
        await rm(`${identity}.pub.${process.pid}`, { force: true });
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        await waitForPub(identity);
        return (await readWardenKey(stateRoot))!;
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } catch (cause) {
    throw new CloudInitError('CLOUDINIT_KEY_FAILED', `making warden's SSH key ${identity} failed`, {
      context: { path: identity }, cause, suggestions: ['install openssh-client (ssh-keygen), or give the first cloudInit user sshAuthorizedKeys'],
    });
  }
  const made = await readWardenKey(stateRoot);
  return { ...made!, created: true };
}

async function waitForPub(identity: string): Promise<void> {
  for (let i = 0; i < 100 && !existsSync(`${identity}.pub`); i++) await new Promise((r) => setTimeout(r, 50));
}
