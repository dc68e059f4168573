/**
 * @module shim/cleanup: the `delete` action containerd runs when a task's shim is gone
 * (killed, crashed): end the VM from its record alone (kill QEMU, undo its host changes),
 * forget it, unmount the bundle's rootfs, and answer with a DeleteResponse on stdout.
 */
import { NodeProcessRunner } from '../sys/index.js';
import { expectsProcess, isVmError } from '../vm/index.js';
import { killRecordedSandbox } from './sandbox.js';
import type { ShimArgs } from './args.js';
import { shimVms } from './manager.js';
import { shimPaths, vmNameFor } from './names.js';
import { rootfsMounted, unmountRootfs } from './prepare.js';
import { loadProtos, timestamp } from './protos.js';
import { exitStatusOf } from './task.js';

/** SIGKILL's status: what the task ended with when its shim died and we had to kill it. */
const KILLED = 137;

export async function deleteAfterDeadShim(a: ShimArgs): Promise<Buffer> {
  const protos = loadProtos();
  const runner = new NodeProcessRunner();
  const paths = shimPaths(a.address);
  const { vms } = shimVms(paths.stateRoot, runner);
  const vm = vmNameFor(a.namespace, a.id);
  let status = KILLED;
  let pid = 0;
  // A pod sandbox has a placeholder process and no VM; anything else is a VM.
  if (!(await killRecordedSandbox(paths.dir, vm))) {
    try {
      const rec = await vms.get(vm);
      pid = rec.run?.qemu.pid ?? 0;
      if (expectsProcess(rec.phase)) await vms.kill(vm);
      else status = exitStatusOf(rec);
      await vms.delete(vm);
    } catch (err) {
      if (!isVmError(err, 'VM_NOT_FOUND')) throw err;
    }
  }
  for (let i = 0; i < 8 && rootfsMounted(a.bundle); i++) await unmountRootfs(runner, a.bundle, 1);
  const t = protos.type('containerd.task.v2.DeleteResponse');
  return Buffer.from(t.encode(t.fromObject({ pid, exitStatus: status, exitedAt: timestamp(new Date()) })).finish());
}
