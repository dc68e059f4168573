/** @module plan/base: the fixed hardening options, machine, accelerator, CPU and memory, QMP monitor and serial console. */
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';
import { TCG_TB_SIZE_MIB } from './jail.js';

/** QEMU's seccomp filter with every optional deny on. */
export const SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/** Resolves accel: auto against the kvmUsable fact. */
export function resolveAccel(spec: Spec, facts: Facts, b: PlanBuilder): 'kvm' | 'tcg' {
  if (spec.accel === 'tcg') return 'tcg';
  if (spec.accel === 'kvm') {
    if (!facts.kvmUsable) b.issue({ code: 'PLAN_KVM_UNUSABLE', from: 'accel', message: 'accel is kvm, but KVM is not usable on this host', suggestion: 'use accel: auto (falls back to tcg) or accel: tcg' });
    return 'kvm';
  }
  return facts.kvmUsable ? 'kvm' : 'tcg';
}

/** The concrete machine type for q35/pc (an alias resolves to the versioned name, pinning the guest ABI). */
export function resolveMachine(spec: Spec, facts: Facts, b: PlanBuilder): string {
  const m = facts.qemu.machines.find((x) => x.alias === spec.machine) ?? facts.qemu.machines.find((x) => x.name === spec.machine);
  if (m === undefined) {
    b.issue({ code: 'PLAN_UNSUPPORTED', from: 'machine', message: `QEMU ${facts.qemu.binary} has no machine type ${spec.machine}` });
    return spec.machine;
  }
  if (spec.cpus > m.cpuMax) b.issue({ code: 'PLAN_UNSUPPORTED', from: 'cpus', message: `${spec.cpus} vCPUs exceed machine ${m.name}'s maximum of ${m.cpuMax}` });
  return m.name;
}

/** Identity and hardening first: no config files, no default devices, stopped until the manager says go. */
export function planHardening(spec: Spec, b: PlanBuilder): void {
  b.arg('(base)', '-name', `guest=${spec.name},debug-threads=on`);
  b.arg('(base)', '-no-user-config', '-nodefaults', '-S');
  b.arg('(base)', '-sandbox', SANDBOX);
}

export function planMachine(spec: Spec, b: PlanBuilder, accel: 'kvm' | 'tcg', machine: string, machineProps: string[]): void {
  b.arg('machine', '-machine', [machine, 'usb=off', 'dump-guest-core=off', ...machineProps].join(','));
  // TCG's translation cache is sized explicitly (QEMU's default is 1 GiB), so the memory limit can count it.
  b.arg('accel', '-accel', accel === 'tcg' ? `tcg,tb-size=${TCG_TB_SIZE_MIB}` : 'kvm');
  b.arg('accel', '-cpu', accel === 'kvm' ? 'host' : 'max');
  b.arg('cpus', '-smp', `${spec.cpus},sockets=1,cores=${spec.cpus},threads=1`);
  b.arg('memory', '-m', `size=${spec.memory}b`);
  b.arg('(base)', '-display', 'none', '-msg', 'timestamp=on', '-boot', 'strict=on');
  if (accel === 'kvm') b.note('device', '/dev/kvm', 'rw', 'accel');
}

/** QMP and the serial console on sockets the manager listens on; the serial log through a pipe to the log writer. */
export function planConsoles(spec: Spec, facts: Facts, b: PlanBuilder): void {
  const cap = spec.serial.logMax;
  const qmp = b.listenFd('(base)', 'qmp', facts.paths.qmpSocket);
  b.arg('(base)', '-chardev', `socket,id=monitor,fd=${qmp},server=on,wait=off`, '-mon', 'chardev=monitor,mode=control');
  b.note('socket', facts.paths.qmpSocket, 'listen (manager)', '(base)', 'QMP monitor; QEMU gets the listening fd');
  const serial = b.listenFd('serial', 'serial', facts.paths.serialSocket);
  const log = b.fdsetLog('serial.log', 'serial-log', facts.paths.serialLog, cap, 'serial-log');
  b.arg('serial', '-chardev', `socket,id=serial0,fd=${serial},server=on,wait=off,logfile=${log},logappend=on`);
  b.device('serial', { driver: 'isa-serial', chardev: 'serial0', id: 'serial0' });
  b.note('socket', facts.paths.serialSocket, 'listen (manager)', 'serial', 'serial console, attachable');
  b.note('file', facts.paths.serialLog, 'append', 'serial.log', `serial console log, written by the log writer from a pipe (QEMU holds no file): rotated to serial.log.1 at ${cap} bytes (serial.logMax)`);
}
