/**
 * @module qemu/qapi: checks a JSON value against a command's argument type in the
 * binary's own QAPI schema (query-qmp-schema), so a plan QEMU would reject fails at plan time.
 */
import type { QapiEntry } from './types.js';

export type QapiIndex = ReadonlyMap<string, QapiEntry>;

/** The commands whose arguments the planner checks (plan/builder's QapiCommand is this list). */
export const PLANNED_COMMANDS = ['blockdev-add', 'netdev_add', 'object-add'] as const;
export type PlannedCommand = typeof PLANNED_COMMANDS[number];

/**
 * The part of a schema checkCommandArgs reads for `commands`: those commands and every type
 * their arguments reach (members, variants, array elements, alternatives), transitively, each
 * with only the fields the check reads. The capability cache stores this (about 40 KB of
 * QEMU 7.2's 186 KB), so a CLI run parses a fifth of the JSON; every check of those commands
 * gives what it gives against the whole schema (qemu.test.ts).
 */
export function plannerSchema(schema: readonly QapiEntry[], commands: readonly string[] = PLANNED_COMMANDS): QapiEntry[] {
  const ix = indexSchema(schema);
  const keep = new Set<string>();
  const todo = [...commands];
  while (todo.length > 0) {
    const name = todo.pop()!;
    const e = ix.get(name);
    if (e === undefined || keep.has(name)) continue;
    keep.add(name);
    if (e['arg-type'] !== undefined) todo.push(e['arg-type']);
    if (e['element-type'] !== undefined) todo.push(e['element-type']);
    // An enum's members have names only (QEMU >= 6.2).
    for (const m of e.members ?? []) if (m.type !== undefined) todo.push(m.type);
    for (const v of e.variants ?? []) todo.push(v.type);
  }
  return schema.filter((e) => keep.has(e.name)).map((e) => {
    const out: QapiEntry = { name: e.name, 'meta-type': e['meta-type'] };
    if (e['json-type'] !== undefined) out['json-type'] = e['json-type'];
    if (e.values !== undefined) out.values = e.values;
    // 'default' is kept as it is: its presence is what makes a member optional.
    if (e.members !== undefined) out.members = e.members.map((m) => ({ ...(m.name === undefined ? {} : { name: m.name }), ...(m.type === undefined ? {} : { type: m.type }), ...('default' in m ? { default: m.default } : {}) }) as NonNullable<QapiEntry['members']>[number]);
    if (e['element-type'] !== undefined) out['element-type'] = e['element-type'];
    if (e.tag !== undefined) out.tag = e.tag;
    if (e.variants !== undefined) out.variants = e.variants.map((v) => ({ case: v.case, type: v.type }));
    if (e['arg-type'] !== undefined) out['arg-type'] = e['arg-type'];
    return out;
  });
}

export function indexSchema(schema: readonly QapiEntry[]): QapiIndex {
  return new Map(schema.map((e) => [e.name, e]));
}

/** Problems of `value` as the arguments of `command` ("" list when it fits); null when the schema lacks the command. */
export function checkCommandArgs(index: QapiIndex, command: string, value: unknown): string[] | null {
  const cmd = index.get(command);
  if (cmd?.['arg-type'] === undefined) return null;
  const errs: string[] = [];
  checkType(index, cmd['arg-type'], value, '', errs);
  return errs;
}

function checkType(ix: QapiIndex, typeName: string, v: unknown, at: string, errs: string[]): void {
  const t = ix.get(typeName);
  const here = at === '' ? 'the object' : at;
  if (t === undefined) { errs.push(`${here}: type ${typeName} is missing from the schema`); return; }
  switch (t['meta-type']) {
    case 'builtin': return checkBuiltin(t['json-type'] ?? 'value', v, here, errs);
    case 'enum':
      if (typeof v !== 'string' || !(t.values ?? []).includes(v)) errs.push(`${here}: ${JSON.stringify(v)} is not one of ${(t.values ?? []).join(', ')}`);
      return;
    case 'array':
      if (!Array.isArray(v)) { errs.push(`${here}: expected an array`); return; }
      v.forEach((e, i) => checkType(ix, t['element-type'] ?? '', e, `${at}[${i}]`, errs));
      return;
    case 'alternate': {
      const ok = (t.members ?? []).some((m) => { const e: string[] = []; checkType(ix, m.type, v, at, e); return e.length === 0; });
      if (!ok) errs.push(`${here}: ${JSON.stringify(v)} fits none of the alternatives`);
      return;
    }
    case 'object': return checkObject(ix, t, v, at, errs);
    default: errs.push(`${here}: unexpected schema entry ${t['meta-type']}`);
  }
}

function checkBuiltin(jsonType: string, v: unknown, here: string, errs: string[]): void {
  const ok = jsonType === 'value' ? true
    : jsonType === 'string' ? typeof v === 'string'
      : jsonType === 'int' ? Number.isInteger(v)
        : jsonType === 'number' ? typeof v === 'number'
          : jsonType === 'boolean' ? typeof v === 'boolean'
            : jsonType === 'null' ? v === null : false;
  if (!ok) errs.push(`${here}: expected ${jsonType}, got ${JSON.stringify(v)}`);
}

interface Field { type: string; optional: boolean }

/** Members of an object type plus those of the variant its tag selects, recursively. */
function fieldsOf(ix: QapiIndex, t: QapiEntry, v: Record<string, unknown>, out: Map<string, Field>, errs: string[], at: string): void {
  for (const m of t.members ?? []) if (m.name !== undefined) out.set(m.name, { type: m.type, optional: 'default' in m });
  if (t.tag === undefined || t.variants === undefined) return;
  const tagValue = v[t.tag];
  const variant = t.variants.find((x) => x.case === tagValue);
  if (variant === undefined) {
    if (tagValue !== undefined) errs.push(`${at === '' ? '' : `${at}.`}${t.tag}: ${JSON.stringify(tagValue)} is not one of ${t.variants.map((x) => x.case).join(', ')}`);
    return;
  }
  const vt = ix.get(variant.type);
  if (vt !== undefined && vt['meta-type'] === 'object') fieldsOf(ix, vt, v, out, errs, at);
}

function checkObject(ix: QapiIndex, t: QapiEntry, v: unknown, at: string, errs: string[]): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) { errs.push(`${at === '' ? 'the value' : at}: expected an object`); return; }
  const obj = v as Record<string, unknown>;
  const fields = new Map<string, Field>();
  fieldsOf(ix, t, obj, fields, errs, at);
  const p = (k: string) => (at === '' ? k : `${at}.${k}`);
  for (const [k, val] of Object.entries(obj)) {
    const f = fields.get(k);
    if (f === undefined) errs.push(`${p(k)}: not a member (known: ${[...fields.keys()].sort().join(', ')})`);
    else checkType(ix, f.type, val, p(k), errs);
  }
  for (const [k, f] of fields) if (!f.optional && !(k in obj)) errs.push(`${p(k)}: required member missing`);
}
