/**
 * The Debian image built by scripts/build-image.sh for the boot tests and the benchmark:
 * its path (built on first use, cached host-wide), overlays in 0700 directories, the
 * host's OVMF files, and a bare QEMU whose console is watched for a line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const SCRIPT = join(REPO, 'scripts', 'build-image.sh');

/** systemd's greeting once it runs from the image's root file system (firmware, GRUB, kernel and initrd all worked). */
export const SYSTEMD_WELCOME = 'Welcome to \x1b[1mDebian GNU/Linux 12';
/** The serial getty's prompt: the guest finished booting. */
export const LOGIN_PROMPT = 'login:';

let cached: { path: string } | { skip: string } | undefined;

/**
 * The image's path, building it when missing (a few minutes the first time on a host;
 * scripts/setup.sh normally did it already). A reason to skip instead when it cannot be had.
 */
export function debianImage(): { path: string } | { skip: string } {
  if (cached !== undefined) return cached;
  const printed = spawnSync('sh', [SCRIPT, '--print'], { encoding: 'utf8' });
  const path = printed.stdout.trim().split('\n').pop() ?? '';
  if (printed.status === 0 && existsSync(path)) return (cached = { path });
  if (process.getuid?.() !== 0) return (cached = { skip: `the Debian image is not built and building it needs root (sh scripts/build-image.sh)` });
  const r = spawnSync('sh', [SCRIPT, '--quiet'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 });
  const built = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !existsSync(built)) return (cached = { skip: `scripts/build-image.sh failed (status ${String(r.status)}); see its output above` });
  return (cached = { path: built });
}

/** A 0700 temporary directory (as a home directory is) holding a qcow2 overlay over `base`. */
export function overlayDir(base: string, prefix = 'warden-debian-'): { dir: string; overlay: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const overlay = join(dir, 'disk.qcow2');
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img create failed: ${r.stderr}`);
  return { dir, overlay, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The host's OVMF code and vars template (4M build first, as warden picks them). */
export function ovmf(): { code: string; vars: string } | null {
  for (const [code, vars] of [['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'], ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd']] as const) {
    if (existsSync(code) && existsSync(vars)) return { code, vars };
  }
  return null;
}

export interface BareQemu {
  child: ChildProcess;
  /** Everything the console printed so far. */
  console(): string;
  /** Resolves when the console shows `text`; rejects with the console's tail after `timeoutMs` or when QEMU exits. */
  waitFor(text: string, timeoutMs: number): Promise<void>;
  /** SIGKILL and wait for the exit (idempotent). */
  stop(): Promise<void>;
}

/**
 * QEMU with no jail and no warden (the baseline): q35, TCG, the disk on virtio-blk, a
 * user-mode NIC, the console on stdout. `uefiVars` (a writable copy) selects OVMF; `seed`
 * adds a cloud-init seed volume read-only.
 */
export function bareQemu(disk: string, o: { uefiVars?: string; forwardSsh?: number; memory?: string; seed?: string } = {}): BareQemu {
  // -cpu max as warden plans it under TCG, so a comparison runs the same guest code.
  const args = ['-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', o.memory ?? '1024', '-display', 'none', '-nodefaults', '-no-user-config',
    '-serial', 'stdio', '-blockdev', JSON.stringify({ driver: 'qcow2', 'node-name': 'root', file: { driver: 'file', filename: disk } }),
    '-device', 'virtio-blk-pci,drive=root,bootindex=0',
    '-netdev', `user,id=n0${o.forwardSsh === undefined ? '' : `,hostfwd=tcp:127.0.0.1:${o.forwardSsh}-:22`}`, '-device', 'virtio-net-pci,netdev=n0'];
  if (o.seed !== undefined) {
    args.push('-blockdev', JSON.stringify({ driver: 'raw', 'node-name': 'seed', 'read-only': true, file: { driver: 'file', filename: o.seed, 'read-only': true } }),
      '-device', 'virtio-blk-pci,drive=seed');
  }
  if (o.uefiVars !== undefined) {
    const fw = ovmf();
    if (fw === null) throw new Error('no OVMF firmware on this host');
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${fw.code}`, '-drive', `if=pflash,format=raw,file=${o.uefiVars}`);
  }
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  child.stdout!.on('data', (b: Buffer) => { out += b.toString('latin1'); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString('latin1'); });
  const gone = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  return {
    child,
    console: () => out,
    async waitFor(text, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (exited) throw new Error(`QEMU exited before "${text}" appeared; its console ends with:\n${out.slice(-1500)}`);
        if (Date.now() > deadline) throw new Error(`"${text}" did not appear within ${timeoutMs} ms; the console ends with:\n${out.slice(-1500)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!exited) child.kill('SIGKILL');
      await gone;
    },
  };
}
