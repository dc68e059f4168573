/** @module api/openapi: the OpenAPI 3.1 document of /v1, generated from the route table and its zod schemas. */
import * as z from 'zod';
import { ROUTES, SPEC_BODY, type RouteDef } from './routes.js';
import { ConsoleTicket, ErrorSchema, EventSchema, OperationReply, RootSchema, VmListSchema, VmSchema } from './schemas.js';

/** Reply schemas documented once under components.schemas and referred to by name. */
const NAMED: ReadonlyArray<readonly [string, z.ZodType]> = [
  ['Error', ErrorSchema], ['Vm', VmSchema], ['VmList', VmListSchema], ['OperationReply', OperationReply], ['Root', RootSchema],
  ['ConsoleTicket', ConsoleTicket], ['Event', EventSchema],
];

function reply(schema: z.ZodType): Record<string, unknown> {
  const name = NAMED.find(([, s]) => s === schema)?.[0];
  return name === undefined ? json(schema, 'output') : { $ref: `#/components/schemas/${name}` };
}

const json = (schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s['$schema'];
  return s;
};

function parameters(r: RouteDef): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', r.params], ['query', r.query]] as const) {
    if (schema === undefined) continue;
    const s = json(schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
    for (const [name, p] of Object.entries(s.properties ?? {})) {
      const { description, ...rest } = p;
      out.push({ name, in: where, required: where === 'path' || (s.required ?? []).includes(name), schema: rest, ...(description ? { description } : {}) });
    }
  }
  return out;
}

function operation(r: RouteDef, specRef: string | undefined): Record<string, unknown> {
  const op: Record<string, unknown> = { operationId: r.id, summary: r.summary, 'x-permission': r.permission };
  const params = parameters(r);
  if (params.length > 0) op['parameters'] = params;
  if (r.body !== undefined) {
    const schema = r.body === 'spec' && specRef !== undefined ? { $ref: specRef } : json(r.body === 'spec' ? SPEC_BODY : r.body, 'input');
    op['requestBody'] = { required: true, content: r.body === 'spec' ? { 'application/json': { schema }, 'application/yaml': { schema } } : { 'application/json': { schema } } };
  }
  op['responses'] = Object.fromEntries(Object.entries(r.replies).map(([status, rep]) => [status, {
    description: rep.description,
    ...(rep.schema === undefined && rep.contentType === undefined ? {} : { content: { [rep.contentType ?? 'application/json']: rep.schema === undefined ? {} : { schema: reply(rep.schema) } } }),
  }]));
  return op;
}

/**
 * The document. `specRef` puts a `$ref` where the VM spec's schema goes (the checked-in copy
 * refers to schema/warden-v1.schema.json, so a spec change does not touch it); the daemon
 * serves it inline.
 */
export function openApiDocument(version: string, specRef?: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const p = r.path.replace(/:([a-zA-Z]+)/g, '{$1}');
    (paths[p] ??= {})[r.method.toLowerCase()] = operation(r, specRef);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'qemu-warden daemon API', version, description: 'REST/JSON on a unix socket; the caller is identified by SO_PEERCRED. Errors are {"error": {code, message, details}}.' },
    paths,
    components: { schemas: Object.fromEntries(NAMED.map(([name, s]) => [name, json(s, 'output')])) },
  };
}
