/** @module vm/guest: where the test and demo guest built by scripts/build-guest.sh lives, and how to build it. */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root, from this file's place in src/vm or dist/src/vm. */
export function repoRoot(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.includes('/dist/') ? join(here, '..', '..', '..') : join(here, '..', '..');
}

export interface TestGuest {
  kernel: string;
  initrd: string;
  /** The kernel command line that puts the console on ttyS0; append warden.* options. */
  cmdline: string;
}

/** The guest's files if they are built, else null. */
export function findTestGuest(root: string = repoRoot()): TestGuest | null {
  const dir = join(root, '.cache', 'guest');
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initramfs.gz');
  if (!existsSync(kernel) || !existsSync(initrd)) return null;
  return { kernel, initrd, cmdline: 'console=ttyS0 quiet panic=-1' };
}

/** Builds the guest when needed (idempotent, cached) and returns its files. */
export function ensureTestGuest(root: string = repoRoot(), quiet = true): TestGuest {
  const r = spawnSync('sh', [join(root, 'scripts', 'build-guest.sh'), ...(quiet ? ['--quiet'] : [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const guest = findTestGuest(root);
  if (r.status !== 0 || guest === null) {
    throw new Error(`scripts/build-guest.sh failed (status ${String(r.status)}); see its output above`);
  }
  return guest;
}

/** The line the guest prints on its console once it is up. */
export const GUEST_READY_LINE = 'WARDEN-GUEST-READY';
