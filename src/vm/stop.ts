/** @module vm/stop: stopping a running VM: the ACPI power button (pressed again while waiting), then QMP quit, then SIGKILL. */
import { signalProc } from './proc.js';
import { withQmp } from './reconcile.js';
import { endRun, waitGone, type TeardownDeps } from './teardown.js';
import type { Progress } from './steps.js';
import type { VmRecord } from './record.js';

/** How often the ACPI power button is pressed again while waiting for a guest to power off. */
const POWERDOWN_REPEAT_MS = 3000;

export interface StopOptions {
  /** Seconds to wait for the guest to power off after the ACPI request (default 30). */
  timeoutS?: number;
  /** Skip the ACPI request: quit, then kill. */
  force?: boolean;
}

/**
 * Presses the ACPI power button and waits up to `timeoutMs` for QEMU to exit. The press
 * is repeated every few seconds: a guest that is still booting has no one listening to
 * the button yet, and the first press would be lost.
 */
async function powerdown(d: TeardownDeps, rec: VmRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await withQmp(d, rec, (q) => q.execute('system_powerdown', undefined, 2000)).catch(() => undefined);
    const left = deadline - Date.now();
    if (await waitGone(d.fs, rec.run?.qemu, Math.max(0, Math.min(left, POWERDOWN_REPEAT_MS)))) return true;
    if (Date.now() >= deadline) return false;
  }
}

/** Stops the run recorded in `rec` (phase already "stopping", intent "stop") and tears it down. */
export async function stopRun(d: TeardownDeps, rec: VmRecord, o: StopOptions, progress: Progress): Promise<VmRecord> {
  const qemu = rec.run?.qemu;
  if (o.force !== true) {
    const t0 = performance.now();
    if (await powerdown(d, rec, (o.timeoutS ?? 30) * 1000)) {
      progress.done('guest powered off (ACPI)', performance.now() - t0);
      return endRun(d, rec, { shutdownReason: 'guest-shutdown' });
    }
    progress.warn(`the guest did not power off within ${o.timeoutS ?? 30} s: quitting QEMU`);
  }
  await withQmp(d, rec, (q) => q.execute('quit', undefined, 2000)).catch(() => undefined);
  if (await waitGone(d.fs, qemu, 5000)) return endRun(d, rec, { shutdownReason: 'host-qmp-quit' });
  progress.warn('QEMU did not quit within 5 s: killing it');
  if (qemu) await signalProc(d.fs, qemu, 'SIGKILL');
  await waitGone(d.fs, qemu, 5000);
  return endRun(d, rec, { escalated: true });
}
