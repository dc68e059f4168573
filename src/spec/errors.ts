/** @module spec/errors: the spec module's typed errors; every validation issue carries its file:line:col and spec path. */
import { WardenError } from '../errors/index.js';

export interface SpecIssue {
  /** Stable sub-code: SPEC_SYNTAX, SPEC_UNKNOWN_KEY, SPEC_TYPE, SPEC_VALUE, SPEC_CONFLICT, SPEC_DUPLICATE, SPEC_IMAGE ... */
  code: string;
  file: string;
  line: number;
  col: number;
  /** Path in the spec, e.g. disks[0].format ("" for the document). */
  path: string;
  message: string;
  suggestion?: string;
}

export function formatIssue(i: SpecIssue): string {
  const where = `${i.file}:${i.line}:${i.col}`;
  const hint = i.suggestion === undefined ? '' : ` (${i.suggestion})`;
  return `${where}: ${i.path === '' ? '' : `${i.path}: `}${i.message}${hint}`;
}

/** Thrown once with every issue of a spec (zod-style: collect, then fail). */
export class SpecError extends WardenError {
  readonly issues: SpecIssue[];

  /** `exitCode` overrides exit 2 (an image-policy refusal among the issues exits 3). */
  constructor(file: string, issues: SpecIssue[], exitCode?: number) {
    const head = `spec ${file} is invalid: ${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    super(issues[0]?.code === 'SPEC_SYNTAX' ? 'SPEC_SYNTAX' : 'SPEC_INVALID',
      [head, ...issues.map((i) => `  ${formatIssue(i)}`)].join('\n'),
      { context: { file, issues }, ...(exitCode === undefined ? {} : { exitCode }) });
    this.issues = issues;
  }
}

/** A spec file that could not be read at all. */
export class SpecReadError extends WardenError {
  constructor(file: string, cause: unknown) {
    super('SPEC_READ', `reading spec file ${file} failed`, { context: { file }, cause, suggestions: ['check the path and its permissions'] });
  }
}
