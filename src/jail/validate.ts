/** @module jail/validate: pure structural checks of a JailSpec against the jailer config; every issue with its field path. */
import type { JailMount, JailSpec } from './spec.js';
import type { JailerConfig } from './config.js';
import type { JailSpecIssue } from './errors.js';
import { NAME_PATTERN, RESERVED_TARGETS, absolutePathProblem, isUnder } from './paths.js';

type Issues = JailSpecIssue[];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

function checkPath(issues: Issues, path: string, value: unknown): void {
  const problem = absolutePathProblem(value);
  if (problem !== undefined) issues.push({ path, message: problem });
}

function checkIdentity(issues: Issues, spec: JailSpec, config: JailerConfig): void {
  const id: unknown = spec.identity;
  if (!isObj(id)) { issues.push({ path: 'identity', message: 'must be {"lease": true} or {"uid", "gid", "groups"?}' }); return; }
  if ('lease' in id) {
    if (id['lease'] !== true) issues.push({ path: 'identity.lease', message: 'must be true' });
    return;
  }
  const { first, count } = config.uidRange;
  const last = first + count - 1;
  for (const key of ['uid', 'gid'] as const) {
    if (!isInt(id[key], first, last)) {
      issues.push({ path: `identity.${key}`, message: `must be an integer in the jail range ${first}-${last}, got ${String(id[key])}` });
    }
  }
  const groups = id['groups'];
  if (groups === undefined) return;
  if (!Array.isArray(groups)) { issues.push({ path: 'identity.groups', message: 'must be an array of gids' }); return; }
  groups.forEach((g: unknown, i) => {
    if (!(isInt(g, first, last) || (isInt(g, 1, 0xfffffffe) && config.allowedGroups.includes(g)))) {
      issues.push({ path: `identity.groups[${i}]`, message: `gid ${String(g)} is neither in the jail range nor in allowedGroups` });
    }
  });
}

function checkMount(issues: Issues, m: JailMount, i: number, seen: Set<string>): void {
  const at = `mounts[${i}]`;
  if (!isObj(m)) { issues.push({ path: at, message: 'must be an object with a "type"' }); return; }
  const target = m.type === 'symlink' ? m.path : m.target;
  const targetKey = m.type === 'symlink' ? 'path' : 'target';
  checkPath(issues, `${at}.${targetKey}`, target);
  if (typeof target === 'string') {
    if (target === '/' || RESERVED_TARGETS.some((r) => isUnder(target, r))) {
      issues.push({ path: `${at}.${targetKey}`, message: `"${target}" is owned by the jailer (/, /proc, /dev are built by it)` });
    }
    if (seen.has(target)) issues.push({ path: `${at}.${targetKey}`, message: `"${target}" is mounted twice` });
    seen.add(target);
  }
  switch (m.type) {
    case 'ro-bind': case 'bind':
      checkPath(issues, `${at}.source`, m.source);
      if (m.idmap !== undefined && !(isInt(m.idmap?.uid, 0, 0xfffffffe) && isInt(m.idmap?.gid, 0, 0xfffffffe))) issues.push({ path: `${at}.idmap`, message: 'must be { uid, gid }, integers of a host uid and gid' });
      break;
    case 'symlink':
      if (typeof m.linkTarget !== 'string' || m.linkTarget === '' || m.linkTarget.includes('\0')) {
        issues.push({ path: `${at}.linkTarget`, message: 'must be a non-empty string' });
      } else if (m.linkTarget.split('/').includes('..')) {
        issues.push({ path: `${at}.linkTarget`, message: `must not contain "..", got "${m.linkTarget}"` });
      }
      break;
    case 'tmpfs':
      if (m.sizeBytes !== undefined && !isInt(m.sizeBytes, 4096, Number.MAX_SAFE_INTEGER)) {
        issues.push({ path: `${at}.sizeBytes`, message: 'must be an integer of at least 4096' });
      }
      break;
    case 'dir': break;
    default: issues.push({ path: `${at}.type`, message: `unknown mount type "${String((m as { type: unknown }).type)}"` });
  }
}

function checkDevices(issues: Issues, spec: JailSpec, config: JailerConfig): void {
  if (!Array.isArray(spec.devices)) { issues.push({ path: 'devices', message: 'must be an array of paths' }); return; }
  spec.devices.forEach((d, i) => {
    checkPath(issues, `devices[${i}]`, d);
    if (typeof d === 'string' && !config.allowedDevices.includes(d)) {
      issues.push({ path: `devices[${i}]`, message: `device "${d}" is not in the jailer's allowed devices` });
    }
  });
}

function checkFds(issues: Issues, spec: JailSpec): void {
  if (!Array.isArray(spec.fds)) { issues.push({ path: 'fds', message: 'must be an array' }); return; }
  const names = new Set<string>();
  spec.fds.forEach((f, i) => {
    if (!isObj(f)) { issues.push({ path: `fds[${i}]`, message: 'must be {"name", "target"}' }); return; }
    if (typeof f.name !== 'string' || f.name === '') issues.push({ path: `fds[${i}].name`, message: 'must be a non-empty string' });
    else if (names.has(f.name)) issues.push({ path: `fds[${i}].name`, message: `"${f.name}" is listed twice` });
    names.add(f.name);
    if (f.target !== 3 + i) issues.push({ path: `fds[${i}].target`, message: `must be ${3 + i} (3 + its index), got ${String(f.target)}` });
  });
}

function checkLimits(issues: Issues, spec: JailSpec): void {
  const cg = spec.cgroup;
  if (cg !== undefined && !isObj(cg)) issues.push({ path: 'cgroup', message: 'must be an object' });
  else if (cg !== undefined) {
    if (typeof cg.name !== 'string' || !NAME_PATTERN.test(cg.name)) issues.push({ path: 'cgroup.name', message: `must match ${NAME_PATTERN.source}` });
    if (cg.cpu !== undefined && !isObj(cg.cpu)) issues.push({ path: 'cgroup.cpu', message: 'must be {"quotaUs", "periodUs"}' });
    else if (cg.cpu !== undefined) {
      if (!isInt(cg.cpu.periodUs, 1000, 1000000)) issues.push({ path: 'cgroup.cpu.periodUs', message: 'must be an integer in 1000-1000000' });
      if (!isInt(cg.cpu.quotaUs, 1000, 2 ** 40)) issues.push({ path: 'cgroup.cpu.quotaUs', message: 'must be an integer of at least 1000' });
    }
    if (cg.memoryBytes !== undefined && !isInt(cg.memoryBytes, 1 << 20, Number.MAX_SAFE_INTEGER)) issues.push({ path: 'cgroup.memoryBytes', message: 'must be an integer of at least 1 MiB' });
    if (cg.pids !== undefined && !isInt(cg.pids, 1, 4194304)) issues.push({ path: 'cgroup.pids', message: 'must be an integer in 1-4194304' });
  }
  if (spec.rlimits !== undefined && !isObj(spec.rlimits)) { issues.push({ path: 'rlimits', message: 'must be an object' }); return; }
  for (const [key, value] of Object.entries(spec.rlimits ?? {})) {
    if (!['nofile', 'fsize', 'core'].includes(key)) issues.push({ path: `rlimits.${key}`, message: 'unknown rlimit (nofile, fsize, core)' });
    else if (!isInt(value, 0, Number.MAX_SAFE_INTEGER)) issues.push({ path: `rlimits.${key}`, message: 'must be a non-negative integer' });
  }
  const nfds = Array.isArray(spec.fds) ? spec.fds.length : 0;
  if (typeof spec.rlimits?.nofile === 'number' && spec.rlimits.nofile < 3 + nfds) {
    issues.push({ path: 'rlimits.nofile', message: `must leave room for stdio and the ${nfds} passed fds` });
  }
}

function checkProcess(issues: Issues, spec: JailSpec): void {
  if (!Array.isArray(spec.argv) || spec.argv.length === 0) issues.push({ path: 'argv', message: 'must hold at least the program path' });
  else {
    checkPath(issues, 'argv[0]', spec.argv[0]);
    spec.argv.forEach((a, i) => { if (typeof a !== 'string' || a.includes('\0')) issues.push({ path: `argv[${i}]`, message: 'must be a string without NUL' }); });
  }
  checkPath(issues, 'cwd', spec.cwd);
  if (!isObj(spec.env)) { issues.push({ path: 'env', message: 'must be an object of strings' }); return; }
  for (const [k, v] of Object.entries(spec.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) issues.push({ path: `env.${k}`, message: 'is not a valid variable name' });
    if (typeof v !== 'string' || v.includes('\0')) issues.push({ path: `env.${k}`, message: 'must be a string without NUL' });
  }
}

function checkNetwork(issues: Issues, spec: JailSpec): void {
  const net: unknown = spec.network;
  if (!isObj(net) || !['none', 'join', 'host'].includes(net['mode'] as string)) {
    issues.push({ path: 'network.mode', message: 'must be "none", "join" or "host"' });
  } else if (net['mode'] === 'join') checkPath(issues, 'network.path', net['path']);
}

/** Every structural problem of `spec` under `config` (no I/O); empty when the spec is acceptable. */
export function checkJailSpec(spec: JailSpec, config: JailerConfig): JailSpecIssue[] {
  const issues: Issues = [];
  if (typeof spec !== 'object' || spec === null) return [{ path: '', message: 'a JailSpec must be an object' }];
  if (typeof spec.name !== 'string' || !NAME_PATTERN.test(spec.name)) issues.push({ path: 'name', message: `must match ${NAME_PATTERN.source}` });
  checkIdentity(issues, spec, config);
  checkNetwork(issues, spec);
  if (!Array.isArray(spec.mounts)) issues.push({ path: 'mounts', message: 'must be an array' });
  else { const seen = new Set<string>(); spec.mounts.forEach((m, i) => checkMount(issues, m, i, seen)); }
  checkDevices(issues, spec, config);
  checkFds(issues, spec);
  checkLimits(issues, spec);
  checkProcess(issues, spec);
  if (spec.nestedUserns !== undefined && typeof spec.nestedUserns !== 'boolean') issues.push({ path: 'nestedUserns', message: 'must be true or false' });
  if (spec.landlock !== undefined) {
    if (!isObj(spec.landlock)) issues.push({ path: 'landlock', message: 'must be {"readOnly": [...], "readWrite": [...]}' });
    else for (const key of ['readOnly', 'readWrite'] as const) {
      const list: unknown = spec.landlock[key];
      if (!Array.isArray(list)) issues.push({ path: `landlock.${key}`, message: 'must be an array of paths' });
      else list.forEach((p, i) => checkPath(issues, `landlock.${key}[${i}]`, p));
    }
    checkLandlockCount(issues, spec);
  }
  return issues;
}

/** The exec helper takes at most this many paths per Landlock list (MAX_ITEMS in native/warden-exec.c). */
const LANDLOCK_MAX_PATHS = 64;

/** Counts the lists as argv.ts builds them (the jailer's own /dev nodes and the devices are added): over the helper's bound it would only say "called wrongly". */
function checkLandlockCount(issues: Issues, spec: JailSpec): void {
  if (!isObj(spec.landlock)) return;
  const { readOnly, readWrite } = spec.landlock;
  if (!Array.isArray(readOnly) || !Array.isArray(readWrite)) return;
  const rw = new Set([...readWrite, '/dev/null', '/dev/zero', '/dev/full', ...(Array.isArray(spec.devices) ? spec.devices : [])]);
  const ro = new Set([...readOnly, '/dev/random', '/dev/urandom'].filter((p) => !rw.has(p)));
  for (const [key, n] of [['readOnly', ro.size], ['readWrite', rw.size]] as const) {
    if (n > LANDLOCK_MAX_PATHS) issues.push({ path: `landlock.${key}`, message: `holds ${n} paths with the jailer's own, at most ${LANDLOCK_MAX_PATHS} are supported` });
  }
}
