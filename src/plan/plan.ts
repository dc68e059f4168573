/** @module plan/plan: buildPlan, the pure function from a validated spec and host facts to everything needed to start the VM. */
import type { Spec } from '../spec/index.js';
import { PlanBuilder } from './builder.js';
import { planConsoles, planHardening, planMachine, resolveAccel, resolveMachine } from './base.js';
import { checkSharedFiles, planDisks } from './disks.js';
import { planHotplugPorts } from './hotplug.js';
import { planNetworks } from './net.js';
import { planDeviceHelpers } from './helpers.js';
import { planCloudInit } from './cloudinit.js';
import { planBoot, planDevices, planFirmware } from './extras.js';
import { planJail } from './jail.js';
import { planSharedMemory } from './helpers-virtiofs.js';
import { checkAgainstBinary } from './check.js';
import { PlanError } from './errors.js';
import type { Facts, Plan } from './types.js';

/**
 * Spec (paths already absolute) + facts → Plan. Pure: no I/O, clock or randomness; the
 * same inputs give the same argv, fd numbers, node names and PCI addresses. Throws one
 * PlanError with every issue found.
 */
export function buildPlan(spec: Spec, facts: Facts): Plan {
  const machineKind = spec.machine;
  const b = new PlanBuilder(machineKind === 'q35' ? 'pcie.0' : 'pci.0', machineKind === 'q35' ? 0x1e : 0x1f);
  b.arg('(base)', facts.qemu.binary);
  const accel = resolveAccel(spec, facts, b);
  const machine = resolveMachine(spec, facts, b);
  planHardening(spec, b);
  if (facts.incoming === 'defer') b.arg('(restore)', '-incoming', 'defer');
  const machineProps = [...planFirmware(spec, facts, b), ...planSharedMemory(spec, b)];
  planMachine(spec, b, accel, machine, machineProps);
  planConsoles(spec, facts, b);
  checkSharedFiles(spec, facts, b);
  planDisks(spec, facts, b, { machineKind });
  planCloudInit(spec, facts, b);
  planNetworks(spec, facts, b);
  planDevices(spec, facts, b);
  planDeviceHelpers(spec, facts, b);
  planHotplugPorts(spec, b);
  planBoot(spec, b);
  checkAgainstBinary(facts, b);
  const jail = planJail(spec, facts, b, accel);
  if (b.issues.length > 0) throw new PlanError(spec.name, b.issues);
  return { argv: [...b.argv], argvTrace: [...b.trace], fds: [...b.fds], jail, hostActions: [...b.actions], manifest: [...b.manifest], helpers: [...b.helpers] };
}
