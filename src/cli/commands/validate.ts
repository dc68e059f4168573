/** @module cli/commands/validate: `warden validate FILE`: every problem of a spec at once, located; exit 2 when any. */
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { WardenError } from '../../errors/index.js';
import { SpecError, SpecReadError, issueAt, parseSpec, resolveSpecPaths, type Spec, type SpecIssue } from '../../spec/index.js';
import { printJson, type Io } from '../output.js';
import { gatherChains } from './plan.js';

export interface LoadedSpec { file: string; text: string; spec: Spec }

/** Reads and parses a spec file; relative paths in it become absolute against its directory. */
export async function loadSpecFile(file: string): Promise<LoadedSpec> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (cause) { throw new SpecReadError(file, cause); }
  const spec = resolveSpecPaths(parseSpec(text, file), dirname(resolve(file)));
  return { file, text, spec };
}

/** Image problems (missing, unreadable, refused chains) as located spec issues. */
export async function imageIssues(loaded: LoadedSpec): Promise<SpecIssue[]> {
  const { failures } = await gatherChains(loaded.spec);
  return failures.map(({ index, error }) => {
    const msg = error instanceof Error ? error.message : String(error);
    const hint = error instanceof WardenError ? error.suggestions[0] : undefined;
    return issueAt(loaded.text, loaded.file, `disks[${index}].image`, 'SPEC_IMAGE', msg, hint);
  });
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
        const issues = await imageIssues(loaded);
        if (issues.length > 0) throw new SpecError(file, issues);
      }
      const s = loaded.spec;
      if (opts.json) printJson(io, { valid: true, file, spec: s });
      else io.out(`${file}: valid (VM ${s.name}: ${s.disks.length} disk(s), ${s.networks.length} network(s))`);
    });
}
