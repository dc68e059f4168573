/**
 * @module vm/accel: `accel: auto` — does KVM work here? /dev/kvm opening is not enough (on
 * nested hosts a KVM guest can hang or abort), so a tiny guest must make progress: the
 * firmware (SeaBIOS) under KVM with the CPU model the planner uses, which prints its boot
 * stages on the debug console, must reach its last stage within a bound. The verdict is
 * cached per kernel release and QEMU binary.
 */
import { promises as fsp, constants as C } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import type { ProcessRunner } from '../sys/index.js';

export interface KvmVerdict {
  usable: boolean;
  /** Why not, in one line (empty when usable). */
  reason: string;
  /** Milliseconds the probe guest took (0 when not run). */
  probeMs: number;
  cached: boolean;
}

/** The probe guest: firmware only, debug console on stdout, exits when boot fails (there is no disk). */
export function kvmProbeArgv(qemu: string): string[] {
  return [qemu, '-accel', 'kvm', '-cpu', 'host', '-M', 'q35', '-nodefaults', '-no-user-config', '-display', 'none',
    '-m', '32', '-no-reboot', '-boot', 'reboot-timeout=0',
    '-chardev', 'stdio,id=dbg', '-device', 'isa-debugcon,iobase=0x402,chardev=dbg'];
}

/** SeaBIOS's last stage on a machine with no boot device. */
const PROGRESS_MARK = 'No bootable device';

/**
 * The second probe guest: OVMF, which runs in protected and long mode. SeaBIOS alone is not
 * enough: on some nested hosts it finishes under KVM while a Linux kernel (and OVMF) stops
 * with "KVM internal error ... emulation failure" once out of real mode. Its vars are a
 * throwaway snapshot, so no file is written.
 */
export function kvmUefiProbeArgv(qemu: string, code: string, vars: string): string[] {
  return [qemu, '-accel', 'kvm', '-cpu', 'host', '-M', 'q35', '-nodefaults', '-no-user-config', '-display', 'none',
    '-m', '128', '-no-reboot', '-serial', 'stdio',
    '-drive', `if=pflash,format=raw,readonly=on,file=${code}`, '-drive', `if=pflash,format=raw,snapshot=on,file=${vars}`];
}

/** OVMF's boot manager starting, reached only once the firmware ran in long mode. */
const UEFI_PROGRESS_MARK = 'BdsDxe';

/** OVMF code and vars pairs, in order of preference (Debian's ovmf package). */
const OVMF_PAIRS: ReadonlyArray<readonly [string, string]> = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
];

export interface KvmProbeOptions {
  runner: ProcessRunner;
  qemu: string;
  cacheDir: string;
  /** The bound on the probe guest (ms); a working KVM needs well under a second. */
  timeoutMs?: number;
  kvmDevice?: string;
  /** OVMF code and vars for the long-mode probe (default: Debian's; null skips that probe). */
  ovmf?: readonly [string, string] | null;
}

/** Probes KVM (or returns the cached verdict for this kernel and QEMU binary). */
export async function detectKvm(o: KvmProbeOptions): Promise<KvmVerdict> {
  const key = await cacheKey(o.qemu);
  const file = join(o.cacheDir, 'kvm-verdict.json');
  try {
    const c = JSON.parse(await fsp.readFile(file, 'utf8')) as KvmVerdict & { key: string };
    if (c.key === key) return { usable: c.usable, reason: c.reason, probeMs: c.probeMs, cached: true };
  } catch { /* no cache yet, or unreadable: probe */ }
  const verdict = await probeKvm(o);
  await fsp.mkdir(o.cacheDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, JSON.stringify({ ...verdict, key }));
  await fsp.rename(tmp, file);
  return { ...verdict, cached: false };
}

async function cacheKey(qemu: string): Promise<string> {
  const st = await fsp.stat(qemu).catch(() => null);
  return `probe2 ${release()} ${qemu} ${st?.size ?? 0} ${Math.trunc(st?.mtimeMs ?? 0)}`;
}

export async function probeKvm(o: KvmProbeOptions): Promise<Omit<KvmVerdict, 'cached'>> {
  const dev = o.kvmDevice ?? '/dev/kvm';
  try {
    await (await fsp.open(dev, C.O_RDWR)).close();
  } catch (err) {
    return { usable: false, reason: `${dev} cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`, probeMs: 0 };
  }
  const t0 = performance.now();
  const timeoutMs = o.timeoutMs ?? 10_000;
  const ms = (): number => Math.round(performance.now() - t0);
  const r = await o.runner.run(kvmProbeArgv(o.qemu), { timeoutMs });
  if (!r.stdout.includes(PROGRESS_MARK)) return { usable: false, reason: `a KVM probe guest ${why(r, timeoutMs)}`, probeMs: ms() };
  const ovmf = o.ovmf === undefined ? await firstOvmf() : o.ovmf;
  if (ovmf === null) return { usable: true, reason: '', probeMs: ms() };
  const u = await o.runner.run(kvmUefiProbeArgv(o.qemu, ovmf[0], ovmf[1]), { timeoutMs });
  if (!u.stdout.includes(UEFI_PROGRESS_MARK)) {
    const internal = /KVM internal error.*|emulation failure/.exec(u.stdout + u.stderr)?.[0];
    const detail = internal === undefined ? why(u, timeoutMs) : `${why(u, timeoutMs)} (${internal.trim()})`;
    return { usable: false, reason: `a KVM probe guest in long mode (OVMF) ${detail}`, probeMs: ms() };
  }
  return { usable: true, reason: '', probeMs: ms() };
}

function why(r: { signal: string | null; code: number | null; stderr: string }, timeoutMs: number): string {
  return r.signal === 'SIGKILL' ? `made no progress within ${timeoutMs} ms`
    : `${r.signal === 'SIGABRT' ? 'aborted' : `exited (${r.code ?? r.signal})`} before its firmware finished: ${lastLine(r.stderr)}`;
}

async function firstOvmf(): Promise<readonly [string, string] | null> {
  for (const pair of OVMF_PAIRS) {
    const ok = await Promise.all(pair.map((p) => fsp.access(p).then(() => true, () => false)));
    if (ok.every(Boolean)) return pair;
  }
  return null;
}

/** QEMU's last stderr line without its program name and source location. */
function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return (lines[lines.length - 1] ?? '').replace(/^[^:]*qemu-system-[^:]*: /, '').replace(/^\S+\.c:\d+: /, '');
}
