/**
 * @module cli/commands/spec-facts: the spec → facts steps `warden validate` and `warden plan`
 * share (read and parse, gather the host facts start gathers, run the planner's checks).
 * Their commands load this file when they run, so no other command's start-up pays for the
 * spec schemas, the planner and the fact gatherers (issue 16).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { QemuProbeError } from '../../qemu/index.js';
import { PlanError, buildPlan, type Facts } from '../../plan/index.js';
import { SpecError, SpecReadError, issueAt, parseSpec, resolveSpecPaths, type Spec } from '../../spec/index.js';
// The vm modules these come from, not the vm barrel: the barrel initialises the whole lifecycle (manager, migration, daemon ...) validate never uses.
import { cacheDirOf, factSources, gatherFacts } from '../../vm/facts.js';
import { defaultStateRoot } from '../../vm/store.js';
import { IMAGE_POLICY_CODES } from '../../image/index.js';
import { printJson, type Io } from '../output.js';
import { formatWarning, hostNetworkWarnings } from './host-check.js';

export interface LoadedSpec { file: string; text: string; spec: Spec }

/** Reads and parses a spec file; relative paths in it become absolute against its directory. */
export async function loadSpecFile(file: string): Promise<LoadedSpec> {
  let text: string;
  // Synchronously: one small file, read before anything else can run (a thread-pool round trip cost more than the read).
  try { text = readFileSync(file, 'utf8'); } catch (cause) { throw new SpecReadError(file, cause); }
  const spec = resolveSpecPaths(parseSpec(text, file), dirname(resolve(file)));
  return { file, text, spec };
}

/** Where QEMU's capabilities and the KVM verdict are cached: the state root's cache, which start uses too (one probe for all verbs). */
export function defaultCacheDir(stateRoot: string = defaultStateRoot()): string {
  return cacheDirOf(stateRoot);
}

export interface FactOptions {
  qemu: string;
  /** The state root (the VM's directory is ROOT/vms/NAME, as start makes it). */
  stateRoot: string;
  cacheDir: string;
  /** A fixed uid/gid to plan for; default: the lifecycle's policy (a uid leased at launch as root). */
  identity?: Facts['identity'];
  /** Plan as if KVM were (not) usable; default: the cached probe, as start decides. */
  kvm?: boolean;
}

/**
 * All facts for planning the spec, from the gatherer start uses (vm/facts); host-file
 * problems (images, chains, boot files) become one located SpecError.
 */
export async function gatherSpecFacts(loaded: LoadedSpec, o: FactOptions): Promise<{ facts: Facts; kvmFallback: string | null }> {
  const { spec, file, text } = loaded;
  // The KVM verdict always comes from the state root's cache, where start finds it.
  const g = await gatherFacts(spec, factSources({ qemu: o.qemu, cacheDir: o.cacheDir, kvmCacheDir: cacheDirOf(o.stateRoot) }), {
    stateRoot: o.stateRoot, ...(o.kvm === undefined ? {} : { kvm: o.kvm }), ...(o.identity === undefined ? {} : { identity: o.identity }),
  });
  if (g.issues.length > 0) {
    const issues = g.issues.map((i) => issueAt(text, file, i.from, i.code, i.message, i.suggestion));
    // A refusal of the image policy exits 3 (as start does), not 2.
    throw new SpecError(file, issues.sort((a, b) => a.line - b.line || a.col - b.col), issues.some((i) => IMAGE_POLICY_CODES.has(i.code)) ? 3 : undefined);
  }
  return { facts: g.facts, kvmFallback: g.kvmFallback };
}

/** A PlanError's issues pointed at their place in the spec file. */
export function locatePlanError(err: PlanError, text: string, file: string): SpecError {
  return new SpecError(file, err.issues.map((i) => ({ ...issueAt(text, file, i.from, i.code, i.message, i.suggestion), path: i.from })));
}

/**
 * Runs the planner on the gathered facts so that what only the host can tell (a writable
 * image shared by two disks, a device this QEMU lacks) is a validation error too. Without
 * a usable QEMU binary these checks are skipped with a warning.
 */
async function plannerCheck(loaded: LoadedSpec, opts: { qemu: string; stateRoot: string; cacheDir: string }, io: Io): Promise<void> {
  let facts: Facts;
  try {
    // accel: auto plans either way, so only a spec that insists on kvm waits for the KVM verdict.
    ({ facts } = await gatherSpecFacts(loaded, { ...opts, ...(loaded.spec.accel === 'kvm' ? {} : { kvm: true }) }));
  } catch (err) {
    if (!(err instanceof QemuProbeError)) throw err;
    io.err(`warning: planner checks skipped: ${err.message}`);
    return;
  }
  try { buildPlan(loaded.spec, facts); } catch (err) { throw err instanceof PlanError ? locatePlanError(err, loaded.text, loaded.file) : err; }
}

export interface ValidateOptions { json?: boolean; images: boolean; qemu: string; stateDir?: string; cacheDir?: string }

/** `warden validate FILE`: throws a located SpecError (exit 2, 3 for the image policy) when anything is wrong. */
export async function validateFile(io: Io, file: string, opts: ValidateOptions): Promise<void> {
  const loaded = await loadSpecFile(file);
  const stateRoot = opts.stateDir ?? defaultStateRoot();
  if (opts.images) await plannerCheck(loaded, { qemu: opts.qemu, stateRoot, cacheDir: opts.cacheDir ?? defaultCacheDir(stateRoot) }, io);
  const warnings = opts.images ? await hostNetworkWarnings(loaded) : [];
  const s = loaded.spec;
  if (opts.json) printJson(io, { valid: true, file, spec: s, warnings });
  else {
    for (const w of warnings) io.err(formatWarning(w));
    io.out(`${file}: valid (VM ${s.name}: ${s.disks.length} disk(s), ${s.networks.length} network(s))`);
  }
}
