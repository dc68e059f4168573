/**
 * @module shim/args: the shim v2 command line as containerd builds it (Go flag syntax):
 * `-namespace NS -address SOCK -publish-binary CONTAINERD -id ID [-bundle DIR] [-debug] start|delete`,
 * plus our own `serve` action for the long-lived server. Pure.
 */
import { ShimError } from './errors.js';

export type ShimAction = 'start' | 'delete' | 'serve';

export interface ShimArgs {
  action: ShimAction;
  namespace: string;
  /** containerd's gRPC socket (events are published to it). */
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
}

const VALUE_FLAGS: Record<string, keyof ShimArgs> = {
  namespace: 'namespace', address: 'address', 'publish-binary': 'publishBinary', id: 'id', bundle: 'bundle',
};
const BOOL_FLAGS = new Set(['debug', 'v', 'version']);

export function parseShimArgs(argv: readonly string[], cwd: string): ShimArgs {
  const out: Partial<Record<keyof ShimArgs, string | boolean>> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m === null) { rest.push(a); continue; }
    const [, name, inline] = m as unknown as [string, string, string | undefined];
    if (BOOL_FLAGS.has(name)) { if (name === 'debug') out.debug = inline === undefined || inline === 'true'; continue; }
    const key = VALUE_FLAGS[name];
    if (key === undefined) throw new ShimError('SHIM_USAGE', `unknown flag -${name}`, { context: { argv: [...argv] } });
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ShimError('SHIM_USAGE', `flag -${name} needs a value`, { context: { argv: [...argv] } });
    out[key] = value;
  }
  const action = rest[0];
  if (action !== 'start' && action !== 'delete' && action !== 'serve') {
    throw new ShimError('SHIM_USAGE', `expected the action start, delete or serve, got ${JSON.stringify(action ?? '')}`, {
      context: { argv: [...argv] }, suggestions: ['containerd runs this binary; use it as: ctr run --runtime /abs/path/containerd-shim-warden-v1 ...'],
    });
  }
  if (typeof out.address !== 'string' || out.address === '') throw new ShimError('SHIM_USAGE', 'flag -address (containerd\'s socket) is required', { context: { argv: [...argv] } });
  return {
    action, namespace: String(out.namespace ?? 'default'), address: out.address.replace(/^unix:\/\//, ''),
    publishBinary: String(out.publishBinary ?? 'containerd'), id: String(out.id ?? ''), bundle: String(out.bundle ?? cwd), debug: out.debug === true,
  };
}

/** The argv for the server process `start` spawns (the same flags, action serve). */
export function serveArgv(a: ShimArgs): string[] {
  return ['-namespace', a.namespace, '-address', a.address, '-publish-binary', a.publishBinary, ...(a.debug ? ['-debug'] : []), 'serve'];
}
