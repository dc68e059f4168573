/** @module cli/commands/validate: `warden validate FILE`: every problem of a spec at once, located; exit 2 when any. */
import type { Command } from 'commander';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { WardenError } from '../../errors/index.js';
import { SpecError, SpecReadError, issueAt, parseSpec, resolveSpecPaths, type Spec, type SpecIssue } from '../../spec/index.js';
import { printJson, type Io } from '../output.js';
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

export function registerValidate(program: Command, io: Io): void {
  program.command('validate')
    .description('check a VM spec: every problem at once, each with file:line:col (exit 2 when invalid)')
    .argument('<file>', 'the spec (YAML or JSON)')
    .option('--json', 'print the result as JSON')
    .option('--no-images', 'skip opening the disk images and walking their chains')
    .action(async (file: string, opts: { json?: boolean; images: boolean }) => {
      const loaded = await loadSpecFile(file);
      if (opts.images) {
        const { issues } = await checkHostFiles(loaded);
        if (issues.length > 0) throw new SpecError(file, issues);
      }
      const s = loaded.spec;
      if (opts.json) printJson(io, { valid: true, file, spec: s });
      else io.out(`${file}: valid (VM ${s.name}: ${s.disks.length} disk(s), ${s.networks.length} network(s))`);
    });
}
