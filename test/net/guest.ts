/**
 * @module test/net/guest: boots the test guest (scripts/build-guest.sh → .cache/guest) under
 * bare QEMU with TCG and a given -netdev, and waits for lines on its serial console.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

/** The guest kernel and initramfs: WARDEN_GUEST_DIR, else the checkout's .cache/guest. */
export function guestDir(): string {
  return process.env['WARDEN_GUEST_DIR'] ?? join(ROOT, '.cache', 'guest');
}

export function guestSkipReason(): string | undefined {
  const dir = guestDir();
  if (!existsSync(join(dir, 'vmlinuz')) || !existsSync(join(dir, 'initramfs.gz'))) {
    return `no test guest in ${dir}: run scripts/build-guest.sh (or set WARDEN_GUEST_DIR)`;
  }
  if (spawnSync('sh', ['-c', 'command -v qemu-system-x86_64']).status !== 0) return 'qemu-system-x86_64 is not installed';
  return undefined;
}

export interface Guest {
  proc: ChildProcess;
  /** Resolves with the text `re` matched on the first complete console line; rejects on timeout or QEMU exit. */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  console(): string;
  kill(): Promise<void>;
}

/**
 * Starts QEMU (TCG, 256 MiB, no defaults) with `netdev` (JSON) on a virtio-net NIC;
 * `fds` become QEMU's fds 3, 4, ... in order.
 */
export function bootGuest(o: { append: string; netdev: Record<string, unknown>; mac: string; fds?: number[]; deviceOpts?: string }): Guest {
  const dir = guestDir();
  const argv = ['-machine', 'pc,accel=tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none',
    '-serial', 'stdio', '-kernel', join(dir, 'vmlinuz'), '-initrd', join(dir, 'initramfs.gz'),
    '-append', `console=ttyS0 quiet ${o.append}`, '-netdev', JSON.stringify(o.netdev),
    '-device', `virtio-net-pci,netdev=${String(o.netdev['id'])},mac=${o.mac}${o.deviceOpts ?? ''}`];
  const proc = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'pipe', 'pipe', ...(o.fds ?? [])] });
  let out = '';
  const waiters = new Set<() => void>();
  const poke = () => { for (const w of waiters) w(); };
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); poke(); });
  proc.stderr!.on('data', (b: Buffer) => { out += b.toString(); poke(); });
  proc.on('exit', poke);
  const exited = new Promise<void>((res) => proc.on('exit', () => res()));
  return {
    proc,
    console: () => out,
    waitFor(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          // Complete lines only: a line can arrive in pieces.
          const m = out.split('\n').slice(0, -1).map((l) => re.exec(l)).find((x) => x !== null);
          if (m) { done(); resolve(m[0]); } else if (proc.exitCode !== null || proc.signalCode !== null) {
            done(); reject(new Error(`QEMU exited before ${re}:\n${out.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${re}:\n${out.slice(-2000)}`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
