/** @module cli/commands/plan: `warden plan FILE [--json]`: gathers the host facts, runs the pure planner, shows argv with its trace, fds, jail, actions. */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import { printJson, type Io } from '../output.js';

export function registerPlan(program: Command, io: Io): void {
  program.command('plan')
    .description('show everything a spec implies: QEMU argv traced to spec fields, fds, jail, host actions, resources')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print {argv, argvTrace, fds, jail, hostActions, manifest} as JSON')
    .option('--qemu <path>', 'QEMU binary', '/usr/bin/qemu-system-x86_64')
    .option('--state-dir <dir>', 'state root, as for create/start: the VM\'s directory is DIR/vms/NAME (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--cache-dir <dir>', 'where QEMU capabilities are cached (default: STATE/cache, shared with start)')
    .option('--uid <n>', 'plan for this fixed uid (default: the lifecycle\'s policy: as root, a uid leased from the jail range at launch)')
    .option('--gid <n>', 'gid to plan for (default: the uid)')
    .option('--kvm', 'plan as if KVM were usable (skips the probe)')
    .option('--no-kvm', 'plan as if KVM were not usable (skips the probe)')
    .action(async (file: string, opts: { json?: boolean; qemu: string; stateDir?: string; cacheDir?: string; uid?: string; gid?: string; kvm?: boolean }) => {
      // Loaded when the command runs, not at every command's start-up (issue 16).
      const [{ PlanError, buildPlan, planToJson, renderPlan }, { defaultStateRoot }, { defaultCacheDir, gatherSpecFacts, loadSpecFile, locatePlanError }] = await Promise.all([
        import('../../plan/index.js'), import('../../vm/index.js'), import('./spec-facts.js'),
      ]);
      const loaded = await loadSpecFile(file);
      const { text, spec } = loaded;
      const identity = fixedIdentity(opts.uid, opts.gid);
      const root = opts.stateDir ?? defaultStateRoot();
      const { facts, kvmFallback } = await gatherSpecFacts(loaded, { qemu: opts.qemu, stateRoot: root, cacheDir: opts.cacheDir ?? defaultCacheDir(root),
        ...(identity === undefined ? {} : { identity }), ...(opts.kvm === undefined ? {} : { kvm: opts.kvm }) });
      if (kvmFallback !== null) io.err(`warning: KVM is not usable (${kvmFallback}): planned with TCG, as start would (--kvm plans for KVM)`);
      let plan;
      try { plan = buildPlan(spec, facts); } catch (err) { throw err instanceof PlanError ? locatePlanError(err, text, file) : err; }
      if (opts.json) printJson(io, planToJson(plan));
      else io.out(renderPlan(plan));
    });
}

/** --uid/--gid as a fixed identity (either alone stands for both), or undefined for the lifecycle's policy. */
function fixedIdentity(uidText: string | undefined, gidText: string | undefined): { uid: number; gid: number } | undefined {
  const id = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new WardenError('USAGE_BAD_ID', `${flag} must be a non-negative integer, got ${JSON.stringify(text)}`, { context: { [flag.slice(2)]: text } });
    return n;
  };
  const uid = id('--uid', uidText);
  const gid = id('--gid', gidText);
  if (uid === undefined && gid === undefined) return undefined;
  return { uid: uid ?? gid!, gid: gid ?? uid! };
}
