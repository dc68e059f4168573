/**
 * @module shim/protos: containerd's own protobuf definitions (the shim v2 Task service,
 * task events, cgroup metrics, google.rpc.Status), loaded at run time with protobufjs from
 * the Debian -dev packages; nothing is copied. The ttrpc envelope has no .proto in ttrpc
 * 1.1 (Go structs in types.go), so its two messages are declared here from those tags.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { ShimError } from './errors.js';

/** Where Debian's golang-*-dev packages put Go sources (and their .proto files). */
export const DEFAULT_GOCODE = '/usr/share/gocode/src';

const CTD = 'github.com/containerd/containerd';
const FILES = [
  `${CTD}/runtime/v2/task/shim.proto`,
  `${CTD}/api/events/task.proto`,
  'github.com/containerd/cgroups/stats/v1/metrics.proto',
  'github.com/containerd/cgroups/v2/stats/metrics.proto',
  'github.com/gogo/googleapis/google/rpc/status.proto',
];

export interface Protos {
  root: protobuf.Root;
  /** containerd.task.v2.Task */
  task: protobuf.Service;
  request: protobuf.Type;
  response: protobuf.Type;
  type(name: string): protobuf.Type;
}

/** ttrpc's Request/Response/KeyValue, field for field from ttrpc@1.1 types.go (`protobuf:"..."` tags). */
function ttrpcEnvelope(root: protobuf.Root): void {
  const ns = root.define('ttrpc');
  ns.add(new protobuf.Type('KeyValue').add(new protobuf.Field('key', 1, 'string')).add(new protobuf.Field('value', 2, 'string')));
  ns.add(new protobuf.Type('Request')
    .add(new protobuf.Field('service', 1, 'string')).add(new protobuf.Field('method', 2, 'string'))
    .add(new protobuf.Field('payload', 3, 'bytes')).add(new protobuf.Field('timeoutNano', 4, 'int64'))
    .add(new protobuf.Field('metadata', 5, 'KeyValue', 'repeated')));
  ns.add(new protobuf.Type('Response')
    .add(new protobuf.Field('status', 1, 'google.rpc.Status')).add(new protobuf.Field('payload', 2, 'bytes')));
}

let cached: Protos | undefined;

/** Loads (once) the protos under `gocode` (env WARDEN_GOCODE overrides the Debian default). */
export function loadProtos(gocode: string = process.env['WARDEN_GOCODE'] ?? DEFAULT_GOCODE): Protos {
  if (cached !== undefined) return cached;
  const missing = FILES.filter((f) => !existsSync(join(gocode, f)));
  if (missing.length > 0) {
    throw new ShimError('SHIM_PROTO_MISSING', `containerd's protobuf files are missing under ${gocode}: ${missing.join(', ')}`, {
      context: { gocode, missing }, suggestions: ['apt-get install golang-github-containerd-containerd-dev (scripts/setup.sh installs it)'],
    });
  }
  const pbDir = dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (target.startsWith('google/protobuf/')) {
      const p = join(pbDir, target); // descriptor.proto ships with protobufjs; any/empty/timestamp are built in
      return existsSync(p) ? p : target;
    }
    if (target.startsWith('gogoproto/')) return join(gocode, 'github.com/gogo/protobuf', target);
    if (target.startsWith('github.com/')) return join(gocode, target);
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(FILES.map((f) => join(gocode, f)));
  ttrpcEnvelope(root);
  root.resolveAll();
  cached = {
    root, task: root.lookupService('containerd.task.v2.Task'),
    request: root.lookupType('ttrpc.Request'), response: root.lookupType('ttrpc.Response'),
    type: (name) => root.lookupType(name),
  };
  return cached;
}

/**
 * A message as a protobuf Any: containerd's typeurl uses the bare full name
 * (`containerd.events.TaskExit`). protobufjs's built-in Any keeps the field name `type_url`.
 */
export function packAny(p: Protos, typeName: string, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  const t = p.type(typeName);
  return { type_url: typeName, value: t.encode(t.fromObject(value)).finish() };
}

/** A google.protobuf.Timestamp for a Date. */
export function timestamp(d: Date): { seconds: number; nanos: number } {
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
