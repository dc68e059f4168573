/** @module spec/parse: spec text (YAML or JSON) → validated Spec, or one SpecError with every located issue. */
import { LineCounter, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { specSchemas, type Spec } from './schema.js';
import { SpecError, type SpecIssue } from './errors.js';
import { formatPath, locate, parsePath, type PathSeg } from './locate.js';
import { nearest } from './suggest.js';
import { checkRawDuplicates, checkSpec, type RawIssue } from './checks.js';

/** Parses and validates a spec; `file` is only used to locate issues. Paths stay as written (see resolveSpecPaths). */
export function parseSpec(text: string, file: string): Spec {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    throw new SpecError(file, doc.errors.map((e) => {
      const pos = lc.linePos(e.pos[0]);
      return { code: 'SPEC_SYNTAX', file, line: pos.line, col: pos.col, path: '', message: firstLine(e.message) };
    }));
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (cause) {
    // Unresolved aliases and alias bombs surface only here, as plain errors.
    let offset = 0;
    visit(doc, { Alias(_, node) { if (node.resolve(doc) === undefined) { offset = node.range?.[0] ?? 0; return visit.BREAK; } return undefined; } });
    const pos = lc.linePos(offset);
    throw new SpecError(file, [{ code: 'SPEC_SYNTAX', file, line: pos.line, col: pos.col, path: '', message: firstLine((cause as Error).message) }]);
  }
  const raw: RawIssue[] = [];
  const parsed = specSchemas().SpecSchema.safeParse(data ?? {}, { jitless: true });
  if (!parsed.success) raw.push(...parsed.error.issues.flatMap((i) => fromZod(i, data)), ...checkRawDuplicates(data));
  else raw.push(...checkSpec(parsed.data));
  if (raw.length > 0) {
    const issues: SpecIssue[] = raw.map((r) => {
      const pos = locate(doc, lc, r.path, r.atKey === true);
      const issue: SpecIssue = { code: r.code, file, line: pos.line, col: pos.col, path: formatPath(r.path), message: r.message };
      if (r.suggestion !== undefined) issue.suggestion = r.suggestion;
      return issue;
    });
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new SpecError(file, issues);
  }
  return (parsed as { data: Spec }).data;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function valueAt(data: unknown, path: readonly PathSeg[]): unknown {
  let cur = data;
  for (const seg of path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[seg] : undefined;
  return cur;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** One zod issue → located raw issues with the offending value in the message. */
function fromZod(issue: z.core.$ZodIssue, data: unknown): RawIssue[] {
  const path = issue.path.filter((p): p is PathSeg => typeof p !== 'symbol');
  const got = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const known = knownKeys(path);
        const near = nearest(key, known);
        const r: RawIssue = { code: 'SPEC_UNKNOWN_KEY', path: [...path, key], atKey: true, message: `unknown key "${key}"` };
        r.suggestion = near !== null ? `did you mean "${near}"?` : `known keys here: ${known.join(', ')}`;
        return r;
      });
    case 'invalid_type':
      if (got === undefined) return [{ code: 'SPEC_MISSING', path, message: `is required (${article(issue.expected)} ${issue.expected})` }];
      return [{ code: 'SPEC_TYPE', path, message: `must be ${article(issue.expected)} ${issue.expected}, got ${show(got)}` }];
    case 'invalid_value': {
      const values = issue.values.map((v) => String(v));
      if (got === undefined) return [{ code: 'SPEC_MISSING', path, message: `is required (one of ${values.join(', ')})` }];
      const r: RawIssue = { code: 'SPEC_VALUE', path, message: `must be ${values.length === 1 ? show(issue.values[0]) : `one of ${values.join(', ')}`}, got ${show(got)}` };
      const near = typeof got === 'string' ? nearest(got, values) : null;
      if (near !== null) r.suggestion = `did you mean "${near}"?`;
      return [r];
    }
    case 'too_big':
    case 'too_small': {
      const limit = String(issue.code === 'too_big' ? issue.maximum : issue.minimum);
      const what = issue.origin === 'array' ? 'entries' : issue.origin === 'string' ? 'characters' : '';
      const bound = issue.inclusive === false ? (issue.code === 'too_big' ? 'less than' : 'more than') : issue.code === 'too_big' ? 'at most' : 'at least';
      return [{ code: 'SPEC_VALUE', path, message: `must be ${bound} ${limit}${what === '' ? '' : ` ${what}`}, got ${show(got)}` }];
    }
    case 'invalid_union': {
      // Report the branch that matched the value's type (a size string that is no size), if any.
      const branch = issue.errors.find((errs) => errs.length > 0 && errs.every((e) => e.code !== 'invalid_type'));
      if (branch !== undefined) return branch.flatMap((e) => fromZod({ ...e, path: [...issue.path, ...e.path] } as z.core.$ZodIssue, data));
      return [{ code: 'SPEC_TYPE', path, message: `has the wrong type: got ${show(got)}` }];
    }
    case 'invalid_format':
      return [{ code: 'SPEC_VALUE', path, message: `${show(got)} ${issue.message}` }];
    default:
      return [{ code: 'SPEC_VALUE', path, message: issue.code === 'custom' ? issue.message : `${issue.message.replace(/^Invalid input: /, '')}, got ${show(got)}` }];
  }
}

/** Keys the schema allows for the object at `path` (for "did you mean"). */
function knownKeys(path: readonly PathSeg[]): string[] {
  let s: unknown = specSchemas().SpecSchema;
  const unwrap = (x: unknown): unknown => {
    let cur = x as { _zod: { def: Record<string, unknown> } };
    for (let i = 0; i < 8; i++) {
      const def = cur._zod.def;
      const inner = def['innerType'] ?? def['in'];
      if (inner === undefined) break;
      cur = inner as typeof cur;
    }
    return cur;
  };
  for (const seg of path) {
    const def = (unwrap(s) as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (def['type'] === 'array' && typeof seg === 'number') s = def['element'];
    else if (def['type'] === 'object') s = (def['shape'] as Record<string, unknown>)[String(seg)];
    else return [];
    if (s === undefined) return [];
  }
  const def = (unwrap(s) as { _zod: { def: Record<string, unknown> } })._zod.def;
  return def['type'] === 'object' ? Object.keys(def['shape'] as object) : [];
}

/**
 * A located issue for a finding made after parsing (a missing image, a refused chain, a
 * planner problem): `path` is a spec path such as "disks[0].image".
 */
export function issueAt(text: string, file: string, path: string, code: string, message: string, suggestion?: string): SpecIssue {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const segs = parsePath(path);
  const pos = segs.length === 0 ? { line: 1, col: 1 } : locate(doc, lc, segs);
  const issue: SpecIssue = { code, file, line: pos.line, col: pos.col, path: formatPath(segs), message };
  if (suggestion !== undefined) issue.suggestion = suggestion;
  return issue;
}

/** "an object", "an array", "a string". */
function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}
