/** @module cli/commands/plan: `warden plan FILE [--json]`: gathers the host facts, runs the pure planner, shows argv with its trace, fds, jail, actions. */
import type { Command } from 'commander';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { loadQemuCaps } from '../../qemu/index.js';
import { NodeFs, NodeProcessRunner } from '../../sys/index.js';
import { PlanError, buildPlan, planToJson, renderPlan, vmPaths, type Facts } from '../../plan/index.js';
import { SpecError, issueAt } from '../../spec/index.js';
import { printJson, type Io } from '../output.js';
import { checkHostFiles, loadSpecFile, type LoadedSpec } from './validate.js';

/** /var/cache/warden for root, else $XDG_CACHE_HOME/warden or ~/.cache/warden. */
function defaultCacheDir(): string {
  if (process.getuid?.() === 0) return '/var/cache/warden';
  return join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'warden');
}

export interface FactOptions { qemu: string; stateDir: string; cacheDir: string; uid: number; gid: number; kvm: boolean }

function firmwareFacts(): Facts['firmware'] | undefined {
  const pairs: Array<[string, string]> = [
    ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
    ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
    ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'],
  ];
  const hit = pairs.find(([c, v]) => existsSync(c) && existsSync(v));
  return hit === undefined ? undefined : { uefiCode: hit[0], uefiVarsTemplate: hit[1] };
}

/** All facts for planning the spec; host-file problems (images, chains, boot files) become one located SpecError. */
export async function gatherFacts(loaded: LoadedSpec, o: FactOptions): Promise<Facts> {
  const { spec, file } = loaded;
  const { chains, issues } = await checkHostFiles(loaded);
  if (issues.length > 0) throw new SpecError(file, issues);
  const qemu = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: o.cacheDir }, o.qemu);
  const facts: Facts = {
    qemu: { binary: qemu.binary, version: qemu.version, machines: qemu.machines, devices: qemu.devices, ...(qemu.schema === undefined ? {} : { schema: qemu.schema }) },
    kvmUsable: o.kvm,
    chains,
    identity: { uid: o.uid, gid: o.gid },
    paths: vmPaths(o.stateDir, spec.name),
    host: { vhostNet: existsSync('/dev/vhost-net') },
  };
  const fw = firmwareFacts();
  if (fw !== undefined) facts.firmware = fw;
  return facts;
}

/** A PlanError's issues pointed at their place in the spec file. */
function locatePlanError(err: PlanError, text: string, file: string): SpecError {
  return new SpecError(file, err.issues.map((i) => ({ ...issueAt(text, file, i.from, i.code, i.message, i.suggestion), path: i.from })));
}

export function registerPlan(program: Command, io: Io): void {
  program.command('plan')
    .description('show everything a spec implies: QEMU argv traced to spec fields, fds, jail, host actions, resources')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print {argv, argvTrace, fds, jail, hostActions, manifest} as JSON')
    .option('--qemu <path>', 'QEMU binary', '/usr/bin/qemu-system-x86_64')
    .option('--state-dir <dir>', 'parent of the per-VM state directories', '/run/warden/vms')
    .option('--cache-dir <dir>', 'where QEMU capabilities are cached', defaultCacheDir())
    .option('--uid <n>', 'uid to plan for (the lifecycle leases a real one)', '200000')
    .option('--gid <n>', 'gid to plan for (default: the uid)')
    .option('--kvm', 'plan for a usable KVM (accel: auto then picks kvm; default: tcg)')
    .action(async (file: string, opts: { json?: boolean; qemu: string; stateDir: string; cacheDir: string; uid: string; gid?: string; kvm?: boolean }) => {
      const loaded = await loadSpecFile(file);
      const { text, spec } = loaded;
      const uid = Number(opts.uid);
      const gid = Number(opts.gid ?? opts.uid);
      if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0) throw new SpecError(file, [{ code: 'USAGE_BAD_ID', file: '(command line)', line: 1, col: 1, path: '--uid/--gid', message: `must be non-negative integers, got ${opts.uid}/${opts.gid ?? opts.uid}` }]);
      const facts = await gatherFacts(loaded, { qemu: opts.qemu, stateDir: opts.stateDir, cacheDir: opts.cacheDir, uid, gid, kvm: opts.kvm === true });
      let plan;
      try { plan = buildPlan(spec, facts); } catch (err) { throw err instanceof PlanError ? locatePlanError(err, text, file) : err; }
      if (opts.json) printJson(io, planToJson(plan));
      else io.out(renderPlan(plan));
    });
}
