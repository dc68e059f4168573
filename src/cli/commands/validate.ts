/**
 * @module cli/commands/validate: `warden validate FILE`: every problem of a spec at once,
 * located; exit 2 when any. Also the spec → facts steps `warden plan` shares.
 */
import type { Command } from 'commander';
import { constants as fsConstants, existsSync, promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { QemuProbeError, gatherProgramView, loadQemuCaps } from '../../qemu/index.js';
import { NodeFs, NodeHostFiles, NodeProcessRunner } from '../../sys/index.js';
import { PASST_BINARY, PlanError, buildPlan, vmPaths, type Facts } from '../../plan/index.js';
import { WardenError } from '../../errors/index.js';
import { SpecError, SpecReadError, issueAt, parseSpec, resolveSpecPaths, type Spec, type SpecIssue } from '../../spec/index.js';
import { defaultStateRoot } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { formatWarning, hostNetworkWarnings } from './host-check.js';
import { walkChain, type ImageChain } from '../../image/index.js';

export interface LoadedSpec { file: string; text: string; spec: Spec }

/** Reads and parses a spec file; relative paths in it become absolute against its directory. */
export async function loadSpecFile(file: string): Promise<LoadedSpec> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (cause) { throw new SpecReadError(file, cause); }
  const spec = resolveSpecPaths(parseSpec(text, file), dirname(resolve(file)));
  return { file, text, spec };
}

/** Each disk's chain, or why it could not be had (index into spec.disks). */
export async function gatherChains(spec: Spec): Promise<{ chains: Record<string, ImageChain>; failures: Array<{ index: number; error: unknown }> }> {
  const chains: Record<string, ImageChain> = {};
  const failures: Array<{ index: number; error: unknown }> = [];
  await Promise.all(spec.disks.map(async (d, index) => {
    try { chains[d.name] = await chainOf(d.image, d.format); } catch (error) { failures.push({ index, error }); }
  }));
  failures.sort((a, b) => a.index - b.index);
  return { chains, failures };
}

/**
 * The chain under the image policy (src/image walkChain): the top layer's format from the
 * spec, backing formats as recorded, json: and protocol backings refused.
 */
function chainOf(path: string, format: Spec['disks'][number]['format']): Promise<ImageChain> {
  return walkChain(path, { format });
}

/** Boot files QEMU opens by name: they must exist and be readable regular files. */
async function bootFileError(path: string): Promise<string | null> {
  try {
    const st = await fsp.stat(path);
    if (!st.isFile()) return `${path} is not a regular file`;
    await fsp.access(path, fsConstants.R_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be read (${code})`;
  }
}

/** Every host-file problem (images, chains, boot files) as located spec issues, plus the chains that were had. */
export async function checkHostFiles(loaded: LoadedSpec): Promise<{ chains: Record<string, ImageChain>; issues: SpecIssue[] }> {
  const { text, file, spec } = loaded;
  const { chains, failures } = await gatherChains(spec);
  const issues = failures.map(({ index, error }) => {
    const msg = error instanceof Error ? error.message : String(error);
    const hint = error instanceof WardenError ? error.suggestions[0] : undefined;
    // The image module's own code (IMAGE_CHAIN_LOOP ...) names the refusal; the spec error still exits 2.
    return issueAt(text, file, `disks[${index}].image`, error instanceof WardenError ? error.code : 'SPEC_IMAGE', msg, hint);
  });
  for (const key of ['kernel', 'initrd'] as const) {
    const p = spec.boot?.[key];
    const err = p === undefined ? null : await bootFileError(p);
    if (err !== null) issues.push(issueAt(text, file, `boot.${key}`, 'SPEC_FILE', err));
  }
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return { chains, issues };
}

/** Where QEMU's capabilities and the KVM verdict are cached: the state root's cache, which start uses too (one probe for all verbs). */
export function defaultCacheDir(stateRoot: string = defaultStateRoot()): string {
  return join(stateRoot, 'cache');
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
  const { cached: _cached, ...qemu } = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: o.cacheDir }, o.qemu);
  const facts: Facts = {
    qemu,
    kvmUsable: o.kvm,
    chains,
    identity: { uid: o.uid, gid: o.gid },
    paths: vmPaths(o.stateDir, spec.name),
    host: { vhostNet: existsSync('/dev/vhost-net') },
  };
  const fw = firmwareFacts();
  if (fw !== undefined) facts.firmware = fw;
  const passt = await gatherProgramView(new NodeProcessRunner(), new NodeHostFiles(), PASST_BINARY);
  if (passt !== null) facts.helpers = { passt };
  return facts;
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
async function plannerCheck(loaded: LoadedSpec, opts: { qemu: string; cacheDir: string }, io: Io): Promise<void> {
  let facts: Facts;
  try {
    facts = await gatherFacts(loaded, { qemu: opts.qemu, cacheDir: opts.cacheDir, stateDir: '/run/warden/vms', uid: 200000, gid: 200000, kvm: true });
  } catch (err) {
    if (!(err instanceof QemuProbeError)) throw err;
    io.err(`warning: planner checks skipped: ${err.message}`);
    return;
  }
  try { buildPlan(loaded.spec, facts); } catch (err) { throw err instanceof PlanError ? locatePlanError(err, loaded.text, loaded.file) : err; }
}

export function registerValidate(program: Command, io: Io): void {
  program.command('validate')
    .description('check a VM spec: every problem at once, each with file:line:col (exit 2 when invalid)')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print the result as JSON')
    .option('--no-images', 'skip opening the disk images and walking their chains (and the planner and host network checks)')
    .option('--qemu <path>', 'QEMU binary the planner checks against', '/usr/bin/qemu-system-x86_64')
    .option('--cache-dir <dir>', 'where QEMU capabilities are cached (default: the state root\'s cache, shared with start: $WARDEN_STATE_DIR/cache, /var/lib/warden/cache as root)')
    .action(async (file: string, opts: { json?: boolean; images: boolean; qemu: string; cacheDir?: string }) => {
      const loaded = await loadSpecFile(file);
      if (opts.images) await plannerCheck(loaded, { qemu: opts.qemu, cacheDir: opts.cacheDir ?? defaultCacheDir() }, io);
      const warnings = opts.images ? await hostNetworkWarnings(loaded) : [];
      const s = loaded.spec;
      if (opts.json) printJson(io, { valid: true, file, spec: s, warnings });
      else {
        for (const w of warnings) io.err(formatWarning(w));
        io.out(`${file}: valid (VM ${s.name}: ${s.disks.length} disk(s), ${s.networks.length} network(s))`);
      }
    });
}
