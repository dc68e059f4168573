/** @module cli/commands/plan: `warden plan FILE [--json]`: gathers the host facts, runs the pure planner, shows argv with its trace, fds, jail, actions. */
import { join } from 'node:path';
import type { Command } from 'commander';
import { PlanError, buildPlan, planToJson, renderPlan } from '../../plan/index.js';
import { WardenError } from '../../errors/index.js';
import { NodeProcessRunner } from '../../sys/index.js';
import { defaultStateRoot, detectKvm } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { defaultCacheDir, gatherFacts, loadSpecFile, locatePlanError } from './validate.js';

export function registerPlan(program: Command, io: Io): void {
  program.command('plan')
    .description('show everything a spec implies: QEMU argv traced to spec fields, fds, jail, host actions, resources')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print {argv, argvTrace, fds, jail, hostActions, manifest} as JSON')
    .option('--qemu <path>', 'QEMU binary', '/usr/bin/qemu-system-x86_64')
    .option('--state-dir <dir>', 'state root, as for create/start: the VM\'s directory is DIR/vms/NAME (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--cache-dir <dir>', 'where QEMU capabilities are cached (default: STATE/cache, shared with start)')
    .option('--uid <n>', 'uid to plan for (the lifecycle leases a real one)', '200000')
    .option('--gid <n>', 'gid to plan for (default: the uid)')
    .option('--kvm', 'plan as if KVM were usable (skips the probe)')
    .option('--no-kvm', 'plan as if KVM were not usable (skips the probe)')
    .action(async (file: string, opts: { json?: boolean; qemu: string; stateDir?: string; cacheDir?: string; uid: string; gid?: string; kvm?: boolean }) => {
      const loaded = await loadSpecFile(file);
      const { text, spec } = loaded;
      const uid = Number(opts.uid);
      const gid = Number(opts.gid ?? opts.uid);
      for (const [flag, text, n] of [['--uid', opts.uid, uid], ['--gid', opts.gid ?? opts.uid, gid]] as const) {
        if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new WardenError('USAGE_BAD_ID', `${flag} must be a non-negative integer, got ${JSON.stringify(text)}`, { context: { [flag.slice(2)]: text } });
      }
      const root = opts.stateDir ?? defaultStateRoot();
      const stateDir = join(root, 'vms'); // where start will put it (StateStore.paths)
      const kvm = await kvmFact(spec.accel, opts.kvm, opts.qemu, join(root, 'cache'), io);
      const facts = await gatherFacts(loaded, { qemu: opts.qemu, stateDir, cacheDir: opts.cacheDir ?? defaultCacheDir(root), uid, gid, kvm });
      let plan;
      try { plan = buildPlan(spec, facts); } catch (err) { throw err instanceof PlanError ? locatePlanError(err, text, file) : err; }
      if (opts.json) printJson(io, planToJson(plan));
      else io.out(renderPlan(plan));
    });
}

/**
 * Whether KVM is usable, as `start` will decide it: the flag when given, else (unless the
 * spec says tcg) the KVM probe's verdict from the lifecycle's cache under the state root,
 * probing once if there is none. So `plan` shows the accelerator `start` will use.
 */
async function kvmFact(accel: string, flag: boolean | undefined, qemu: string, cacheDir: string, io: Io): Promise<boolean> {
  if (flag !== undefined) return flag;
  if (accel === 'tcg') return false;
  const v = await detectKvm({ runner: new NodeProcessRunner(), qemu, cacheDir });
  if (!v.usable && accel === 'auto') io.err(`warning: KVM is not usable (${v.reason}): planned with TCG, as start would (--kvm plans for KVM)`);
  return v.usable;
}
