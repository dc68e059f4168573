/** @module qmp/gen/schema-to-ts: turns QEMU's query-qmp-schema introspection into TypeScript source (pure). */

/** One entry of `query-qmp-schema` (qapi/introspect.json SchemaInfo), loosely typed: it comes from QEMU. */
export interface SchemaInfo {
  name: string;
  'meta-type': 'builtin' | 'enum' | 'array' | 'object' | 'alternate' | 'command' | 'event';
  features?: string[];
  'arg-type'?: string;
  'ret-type'?: string;
  'allow-oob'?: boolean;
  members?: Array<{ name?: string; type?: string; default?: null; features?: string[] }>;
  tag?: string;
  variants?: Array<{ case: string; type: string }>;
  values?: string[];
  'element-type'?: string;
  'json-type'?: string;
}

export interface GenerateOptions {
  /** Put in the header, e.g. "QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  source: string;
}

const BUILTIN: Record<string, string> = {
  str: 'string', int: 'number', number: 'number', bool: 'boolean', null: 'null', any: 'unknown',
};

/**
 * Commands whose introspected arguments are narrower than what QEMU accepts: QAPI declares
 * them with 'gen': false, so introspection lists only a few members. device_add takes any
 * device property besides {driver, bus, id}; see device-list-properties for the real set.
 */
const OPEN_ARGS = new Set(['device_add']);

/** QAPI names are masked (numbers) in introspection; name each type by where it is first reached. */
function pascal(s: string): string {
  const out = s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1).toLowerCase()).join('');
  return /^[0-9]/.test(out) ? `T${out}` : out;
}

class Namer {
  readonly names = new Map<string, string>();
  private readonly taken = new Set<string>(['QmpEmpty', 'QmpCommands', 'QmpEvents']);
  private readonly queue: Array<[string, string]> = [];

  constructor(private readonly byName: Map<string, SchemaInfo>) {}

  /** Offers `hint` as the name of `type`; the first offer (breadth-first) wins. */
  offer(type: string, hint: string): void {
    if (BUILTIN[type] !== undefined || this.names.has(type)) return;
    const info = this.byName.get(type);
    if (info === undefined) return;
    if (info['meta-type'] === 'array') return this.offer(info['element-type']!, `${hint}Item`);
    if (isEmptyObject(info)) { this.names.set(type, 'QmpEmpty'); return; }
    let name = hint;
    for (let i = 2; this.taken.has(name); i++) name = `${hint}${i}`;
    this.taken.add(name);
    this.names.set(type, name);
    this.queue.push([type, name]);
  }

  /** Names everything reachable, breadth-first, so shallow types get the short names. */
  drain(): void {
    for (let i = 0; i < this.queue.length; i++) {
      const [type, name] = this.queue[i]!;
      const info = this.byName.get(type)!;
      for (const m of info.members ?? []) {
        if (m.type !== undefined) this.offer(m.type, info['meta-type'] === 'alternate' ? `${name}Alt` : `${name}${pascal(m.name ?? '')}`);
      }
      for (const v of info.variants ?? []) this.offer(v.type, `${name}${pascal(v.case)}`);
    }
  }
}

function isEmptyObject(info: SchemaInfo): boolean {
  return info['meta-type'] === 'object' && (info.members ?? []).length === 0 && info.variants === undefined;
}

function docComment(features: string[] | undefined, indent: string): string {
  const tags: string[] = [];
  if (features?.includes('deprecated')) tags.push('@deprecated deprecated in this QEMU');
  if (features?.includes('unstable')) tags.push('unstable (experimental) interface');
  return tags.length === 0 ? '' : `${indent}/** ${tags.join('; ')} */\n`;
}

/** Generates the whole module text for one schema. */
export function schemaToTs(schema: readonly SchemaInfo[], options: GenerateOptions): string {
  const byName = new Map(schema.map((s) => [s.name, s]));
  const namer = new Namer(byName);
  const commands = schema.filter((s) => s['meta-type'] === 'command').sort((a, b) => cmp(a.name, b.name));
  const events = schema.filter((s) => s['meta-type'] === 'event').sort((a, b) => cmp(a.name, b.name));
  for (const c of commands) {
    namer.offer(c['arg-type']!, `${pascal(c.name)}Args`);
    namer.offer(c['ret-type']!, `${pascal(c.name)}Return`);
  }
  for (const e of events) namer.offer(e['arg-type'] ?? '0', `${pascal(e.name)}Data`);
  namer.drain();

  const ref = (type: string): string => typeRef(type, byName, namer.names);
  const out: string[] = [header(options)];
  out.push('/** An object with no members: commands that take or return nothing, events without data. */');
  out.push('export type QmpEmpty = Record<string, never>;\n');
  out.push('/** Every command: its arguments, its return value and whether it may run out of band. */');
  out.push('export interface QmpCommands {');
  for (const c of commands) {
    const args = OPEN_ARGS.has(c.name) ? `${ref(c['arg-type']!)} & { [property: string]: unknown }` : ref(c['arg-type']!);
    out.push(docComment(c.features, '  ') + `  '${c.name}': { args: ${args}; ret: ${ref(c['ret-type']!)}; oob: ${c['allow-oob'] === true} };`);
  }
  out.push('}\n');
  out.push('/** Every event and the type of its `data` (QmpEmpty when QEMU sends none). */');
  out.push('export interface QmpEvents {');
  for (const e of events) out.push(docComment(e.features, '  ') + `  '${e.name}': ${ref(e['arg-type'] ?? '0')};`);
  out.push('}\n');
  const named = [...namer.names.entries()].filter(([, n]) => n !== 'QmpEmpty').sort((a, b) => cmp(a[1], b[1]));
  for (const [type, name] of named) out.push(declare(byName.get(type)!, name, ref, byName));
  return out.join('\n') + '\n';
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function header(options: GenerateOptions): string {
  return [
    `/** @module qmp/generated/qapi: TypeScript types of every QMP command and event of ${options.source}. */`,
    '// GENERATED by `npm run gen:qmp` from query-qmp-schema; do not edit by hand.',
    '// Type names are derived from where a type is first used (QEMU masks QAPI type names).',
    '/* eslint-disable */',
    '',
  ].join('\n');
}

function typeRef(type: string, byName: Map<string, SchemaInfo>, names: Map<string, string>): string {
  const builtin = BUILTIN[type];
  if (builtin !== undefined) return builtin;
  const info = byName.get(type);
  if (info === undefined) return 'unknown';
  if (info['meta-type'] === 'array') {
    const inner = typeRef(info['element-type']!, byName, names);
    return /^[A-Za-z0-9_]+$/.test(inner) || inner.endsWith('[]') ? `${inner}[]` : `Array<${inner}>`;
  }
  return names.get(type) ?? 'unknown';
}

function members(info: SchemaInfo, ref: (t: string) => string, skip?: string): string[] {
  return (info.members ?? [])
    .filter((m) => m.name !== skip)
    .map((m) => docComment(m.features, '  ') + `  '${m.name}'${'default' in m ? '?' : ''}: ${ref(m.type!)};`);
}

function declare(info: SchemaInfo, name: string, ref: (t: string) => string, byName: Map<string, SchemaInfo>): string {
  const doc = docComment(info.features, '');
  switch (info['meta-type']) {
    case 'enum': {
      const values = (info.values ?? []).map((v) => `'${v}'`);
      return `${doc}export type ${name} = ${values.length === 0 ? 'never' : values.join(' | ')};\n`;
    }
    case 'alternate':
      return `${doc}export type ${name} = ${(info.members ?? []).map((m) => ref(m.type!)).join(' | ')};\n`;
    case 'object':
      if (info.variants === undefined) return `${doc}export interface ${name} {\n${members(info, ref).join('\n')}\n}\n`;
      return declareUnion(info, name, ref, byName, doc);
    default:
      return `export type ${name} = unknown;\n`;
  }
}

/** A flat union: the base members without the tag, intersected with one arm per tag value. */
function declareUnion(info: SchemaInfo, name: string, ref: (t: string) => string, byName: Map<string, SchemaInfo>, doc: string): string {
  const tag = info.tag!;
  const tagType = byName.get((info.members ?? []).find((m) => m.name === tag)?.type ?? '');
  const covered = new Set(info.variants!.map((v) => v.case));
  const arms = info.variants!.map((v) => {
    const armType = ref(v.type);
    return armType === 'QmpEmpty' ? `{ '${tag}': '${v.case}' }` : `({ '${tag}': '${v.case}' } & ${armType})`;
  });
  const rest = (tagType?.values ?? []).filter((v) => !covered.has(v));
  if (rest.length > 0) arms.push(`{ '${tag}': ${rest.map((v) => `'${v}'`).join(' | ')} }`);
  const base = members(info, ref, tag);
  const baseText = base.length === 0 ? '' : `{\n${base.join('\n')}\n} & `;
  return `${doc}export type ${name} = ${baseText}(\n  | ${arms.join('\n  | ')}\n);\n`;
}
