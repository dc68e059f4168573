/** @module jail/validate-host: checks a JailSpec against the host (bind sources, device nodes, netns) and the one entry point that throws. */
import { lstatSync, realpathSync } from 'node:fs';
import type { JailSpec } from './spec.js';
import { defaultJailerConfig, type JailerConfig } from './config.js';
import { JailError, type JailSpecIssue } from './errors.js';
import { absolutePathProblem } from './paths.js';
import { checkJailSpec } from './validate.js';

export type HostPathKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'other';

/** What the host says about a path, without following a final symlink; a port so tests can inject a view. */
export interface HostProbe {
  kind(path: string): HostPathKind | undefined;
  realpath(path: string): string | undefined;
}

export const nodeHostProbe: HostProbe = {
  kind(path) {
    try {
      const st = lstatSync(path);
      if (st.isSymbolicLink()) return 'symlink';
      if (st.isFile()) return 'file';
      if (st.isDirectory()) return 'dir';
      if (st.isCharacterDevice()) return 'char';
      if (st.isBlockDevice()) return 'block';
      return 'other';
    } catch { return undefined; }
  },
  realpath(path) {
    try { return realpathSync(path); } catch { return undefined; }
  },
};

/** Exists, is not a symlink, and no ancestor is one either (realpath gives the same spelling). */
function checkReal(issues: JailSpecIssue[], probe: HostProbe, field: string, path: string, kinds: HostPathKind[]): void {
  const kind = probe.kind(path);
  if (kind === undefined) { issues.push({ path: field, message: `"${path}" does not exist on the host` }); return; }
  if (kind === 'symlink') { issues.push({ path: field, message: `"${path}" is a symlink; name its target instead` }); return; }
  const real = probe.realpath(path);
  if (real !== path) { issues.push({ path: field, message: `"${path}" passes through a symlink (resolves to "${real ?? '?'}")` }); return; }
  if (!kinds.includes(kind)) issues.push({ path: field, message: `"${path}" is a ${kind}, expected ${kinds.join(' or ')}` });
}

/** Host-side problems: only for fields whose spelling is already valid (checkJailSpec reports the rest). */
export function checkJailHost(spec: JailSpec, probe: HostProbe = nodeHostProbe): JailSpecIssue[] {
  const issues: JailSpecIssue[] = [];
  const ok = (p: unknown): p is string => absolutePathProblem(p) === undefined;
  (Array.isArray(spec.mounts) ? spec.mounts : []).forEach((m, i) => {
    if (typeof m !== 'object' || m === null) return;
    if ((m.type === 'ro-bind' || m.type === 'bind') && ok(m.source)) {
      checkReal(issues, probe, `mounts[${i}].source`, m.source, ['file', 'dir', 'char', 'block', 'other']);
    }
  });
  (Array.isArray(spec.devices) ? spec.devices : []).forEach((d, i) => {
    if (ok(d)) checkReal(issues, probe, `devices[${i}]`, d, ['char', 'block']);
  });
  if (typeof spec.network === 'object' && spec.network?.mode === 'join' && ok(spec.network.path)) {
    checkReal(issues, probe, 'network.path', spec.network.path, ['file', 'other']);
  }
  return issues;
}

/**
 * Throws JAIL_INVALID_SPEC listing every issue (structural and host) with its field path;
 * nothing has been created when it throws. `context.issues` carries the list.
 */
export function validateJailSpec(spec: JailSpec, config: JailerConfig = defaultJailerConfig(), probe: HostProbe = nodeHostProbe): void {
  const issues = checkJailSpec(spec, config);
  if (typeof spec === 'object' && spec !== null) issues.push(...checkJailHost(spec, probe));
  if (issues.length === 0) return;
  const name = typeof spec?.name === 'string' ? spec.name : '?';
  const summary = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new JailError('JAIL_INVALID_SPEC',
    `refusing JailSpec "${name}": ${issues.length} issue${issues.length === 1 ? '' : 's'}: ${summary}${issues.length > 5 ? '; ...' : ''}`,
    { context: { jail: name, issues }, suggestions: ['paths must be absolute and canonical; bind sources and devices must exist and not be symlinks'] });
}
