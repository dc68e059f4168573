/**
 * @module vm/hotplug-passt: the passt helper of a hot-plugged user NIC, started as at boot
 * (the plan's JailSpec, a jail and leased uid of its own) but outside `start`: a new
 * socketpair, the helper's end handed to its jail, QEMU's end returned for `getfd`.
 */
import { closeSync, openSync, constants as C } from 'node:fs';
import { join } from 'node:path';
import type { HelperPlan } from '../plan/index.js';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';
import { procId } from './proc.js';
import type { HelperRun } from './record.js';
import type { TeardownDeps } from './teardown.js';

/** The most a hot-plugged helper may write to its log (its jail's RLIMIT_FSIZE). */
export const HOTPLUG_HELPER_LOG_BYTES = 1 << 20;

/**
 * Launches helper `h` of VM `vm`; `recordFirst` runs before the launch (the caller writes the
 * helper's undo entry there). Returns QEMU's end of the socketpair (the caller passes and
 * closes it) and the helper's run record. On failure nothing is left open; the recorded
 * undo (jail teardown) removes the jail.
 */
export async function startNicHelper(d: TeardownDeps, vm: string, h: HelperPlan, recordFirst: () => Promise<void>): Promise<{ qemuEnd: number; run: HelperRun }> {
  const native = loadNative();
  const paths = d.store.paths(vm);
  const [qemuEnd, helperEnd] = native.socketpair();
  // At boot a helper's stderr goes through the VM's log writer, which caps what lands on disk. That
  // writer's pipes were handed out at start, so a hot-plugged helper writes (errors only) to a log
  // of its own instead, bounded by RLIMIT_FSIZE in its jail: a helper the guest took over cannot
  // fill the state filesystem through it.
  const log = join(paths.dir, `${h.jail.name}.log`);
  const stderr = openSync(log, C.O_WRONLY | C.O_TRUNC | C.O_CREAT | C.O_NOFOLLOW, 0o600);
  const jail = { ...h.jail, rlimits: { ...h.jail.rlimits, fsize: HOTPLUG_HELPER_LOG_BYTES } };
  try {
    await recordFirst();
    const fds = new Map(h.fds.map((f) => [f.name, helperEnd] as const));
    const statusFile = join(paths.dir, `${h.jail.name}.status`);
    const l = await d.backends.jail.launch(jail, fds, stderr, statusFile, paths.dir);
    const proc = await procId(d.fs, l.pid);
    if (proc === null) throw new VmError('VM_HOTPLUG_FAILED', `helper ${h.kind} of VM ${vm} (${h.from}) exited while starting`, { context: { vm, helper: h.jail.name, log }, suggestions: [`read ${log}`] });
    return { qemuEnd, run: { kind: h.kind, from: h.from, jailName: h.jail.name, proc, uid: l.uid, gid: l.gid, cgroups: l.cgroups, ...(l.statusFile === undefined ? {} : { statusFile: l.statusFile }) } };
  } catch (err) {
    native.closeFd(qemuEnd);
    throw err;
  } finally {
    // The helper holds its own copy now (or never started): ours must go, or it would never see QEMU's end close.
    native.closeFd(helperEnd);
    closeSync(stderr);
  }
}

/** Stops a NIC's helper and removes its jail (idempotent: it usually quit when QEMU's end closed). */
export async function stopNicHelper(d: TeardownDeps, helper: { jailName: string; owner: string }): Promise<void> {
  await d.backends.jail.teardown(helper.jailName, helper.owner);
}
