/** @module vm/stop: stopping a running VM: the ACPI power button (pressed again while waiting), the guest agent's shutdown where there is one, then QMP quit, then SIGKILL. */
import { agentShutdown } from './agent.js';
import { vmFactPaths } from './facts.js';
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

/**
 * With a guest agent, half the wait goes to ACPI and half to the agent's guest-shutdown, so a
 * guest that ignores the power button (no acpid, logind gone) still powers itself off.
 */
async function agentPowerdown(d: TeardownDeps, rec: VmRecord, timeoutMs: number, progress: Progress): Promise<boolean> {
  try {
    await agentShutdown(vmFactPaths(d.store.root, rec.name).guestAgentSocket!, Math.min(timeoutMs, 5000));
  } catch (err) {
    progress.warn(`the guest agent did not take the shutdown request (${(err as Error).message})`);
    return false;
  }
  return waitGone(d.fs, rec.run?.qemu, timeoutMs);
}

/** Stops the run recorded in `rec` (phase already "stopping", intent "stop") and tears it down. */
export async function stopRun(d: TeardownDeps, rec: VmRecord, o: StopOptions, progress: Progress): Promise<VmRecord> {
  const qemu = rec.run?.qemu;
  if (o.force !== true) {
    const t0 = performance.now();
    const total = (o.timeoutS ?? 30) * 1000;
    const agent = rec.spec['guestAgent'] === true;
    if (await powerdown(d, rec, agent ? total / 2 : total)) {
      progress.done('guest powered off (ACPI)', performance.now() - t0);
      return endRun(d, rec, { shutdownReason: 'guest-shutdown' });
    }
    if (agent) {
      progress.warn(`the guest did not answer the ACPI power button within ${total / 2000} s: asking its guest agent`);
      if (await agentPowerdown(d, rec, total / 2, progress)) {
        progress.done('guest powered off (guest agent)', performance.now() - t0);
        return endRun(d, rec, { shutdownReason: 'guest-shutdown' });
      }
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
