/**
 * @module shim/bundle: an OCI bundle as a warden VM spec, pure. The spec comes from the
 * annotation io.warden.spec (inline YAML/JSON, or a path inside the rootfs), else
 * /warden/vm.yaml in the rootfs; its paths resolve inside the rootfs; writable disks get a
 * qcow2 overlay in the bundle's work directory (the image stays unchanged); OCI
 * linux.resources cap memory and vCPUs; a network namespace path is reported for the NIC.
 */
import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseSpec, type Spec } from '../spec/index.js';
import { ShimError } from './errors.js';

export const SPEC_ANNOTATION = 'io.warden.spec';
export const ROOTFS_SPEC = '/warden/vm.yaml';

/** The parts of an OCI runtime config.json the shim reads. */
export interface OciConfig {
  root?: { path?: string; readonly?: boolean };
  annotations?: Record<string, string>;
  linux?: {
    resources?: { memory?: { limit?: number }; cpu?: { quota?: number; period?: number } };
    namespaces?: Array<{ type: string; path?: string }>;
  };
}

/** Where the spec text comes from: inline text, or a file inside the rootfs. */
export type SpecSource = { kind: 'inline'; text: string; origin: string } | { kind: 'file'; path: string };

export function specSource(oci: OciConfig): SpecSource {
  const a = oci.annotations?.[SPEC_ANNOTATION];
  if (a === undefined || a.trim() === '') return { kind: 'file', path: ROOTFS_SPEC };
  if (a.includes('\n') || a.trimStart().startsWith('{')) return { kind: 'inline', text: a, origin: `annotation ${SPEC_ANNOTATION}` };
  return { kind: 'file', path: a.trim() };
}

/** A path of the spec, absolute or relative, taken as rooted at the rootfs ('..' cannot climb out). */
export function inRootfs(rootfs: string, p: string): string {
  return posix.join(rootfs, posix.normalize(`/${p}`));
}

export interface Overlay {
  disk: string;
  base: string;
  baseFormat: string;
  path: string;
}

export interface DerivedVm {
  /** The spec to create the VM from (as written, with the rewrites below). */
  spec: Record<string, unknown>;
  overlays: Overlay[];
  /** Host paths the spec names, each of which must resolve (symlinks too) inside the rootfs. */
  rootedPaths: string[];
  /** The network namespace the bundle names, if any (a CNI-made pod netns). */
  netns?: string;
  /** What the OCI limits changed, for the shim's log. */
  notes: string[];
}

export interface DeriveInput {
  oci: OciConfig;
  specText: string;
  /** The spec's file (or annotation label), for located errors. */
  specOrigin: string;
  rootfs: string;
  workDir: string;
  vmName: string;
}

export function deriveVm(i: DeriveInput): DerivedVm {
  const valid: Spec = parseSpec(i.specText, i.specOrigin); // every issue, located, or a throw
  const raw = parseYaml(i.specText) as Record<string, unknown>;
  const out: DerivedVm = { spec: { ...raw, name: i.vmName }, overlays: [], rootedPaths: [], notes: [] };
  if (valid.boot !== undefined) {
    const boot: Record<string, unknown> = { ...(raw['boot'] as Record<string, unknown>), kernel: inRootfs(i.rootfs, valid.boot.kernel) };
    out.rootedPaths.push(boot['kernel'] as string);
    if (valid.boot.initrd !== undefined) out.rootedPaths.push((boot['initrd'] = inRootfs(i.rootfs, valid.boot.initrd)) as string);
    out.spec['boot'] = boot;
  }
  const rawDisks = (raw['disks'] ?? []) as Array<Record<string, unknown>>;
  out.spec['disks'] = valid.disks.map((d, n) => {
    const base = inRootfs(i.rootfs, d.image);
    out.rootedPaths.push(base);
    // A chain may lead anywhere inside the image (and where the spec allows, inside it too), never beyond.
    const allowDirs = [...(d.allowDirs ?? []).map((a) => inRootfs(i.rootfs, a)), i.rootfs];
    const dataFile = d.dataFile === undefined ? {} : { dataFile: inRootfs(i.rootfs, d.dataFile) };
    if (d.readOnly || d.media === 'cdrom') return { ...rawDisks[n], image: base, allowDirs, ...dataFile };
    const path = posix.join(i.workDir, `disk-${d.name}.qcow2`);
    out.overlays.push({ disk: d.name, base, baseFormat: d.format, path });
    return { ...rawDisks[n], image: path, format: 'qcow2', allowDirs, ...dataFile };
  });
  capResources(i.oci, valid, out);
  if ('restart' in out.spec) {
    // Restarts belong to whoever runs the task (kubelet, Nomad): a task that ends must end.
    delete out.spec['restart'];
    out.notes.push('the spec\'s restart policy is ignored: containerd\'s client decides restarts');
  }
  const netns = netnsOf(i.oci);
  if (netns !== undefined) out.netns = netns;
  return out;
}

/** The network namespace the bundle joins (a path), if any; a new empty one is not a pod's. */
export function netnsOf(oci: OciConfig): string | undefined {
  return oci.linux?.namespaces?.find((n) => n.type === 'network' && n.path !== undefined && n.path !== '')?.path;
}

/** OCI linux.resources lower (never raise) the guest's memory and vCPU count. */
function capResources(oci: OciConfig, valid: Spec, out: DerivedVm): void {
  const r = oci.linux?.resources;
  const limit = r?.memory?.limit;
  if (typeof limit === 'number' && limit > 0 && limit < valid.memory) {
    out.spec['memory'] = Math.floor(limit / (1 << 20)) * (1 << 20);
    out.notes.push(`guest memory capped from ${valid.memory} to ${String(out.spec['memory'])} bytes by linux.resources.memory.limit`);
  }
  const quota = r?.cpu?.quota;
  const period = r?.cpu?.period ?? 100_000;
  if (typeof quota === 'number' && quota > 0 && period > 0) {
    const cpus = Math.max(1, Math.ceil(quota / period));
    if (cpus < valid.cpus) {
      out.spec['cpus'] = cpus;
      out.notes.push(`vCPUs capped from ${valid.cpus} to ${cpus} by linux.resources.cpu (quota ${quota}/${period})`);
    }
  }
}

/** The rootfs directory the bundle names (root.path, relative to the bundle). */
export function rootfsOf(oci: OciConfig, bundle: string): string {
  const p = oci.root?.path ?? 'rootfs';
  return posix.isAbsolute(p) ? p : posix.join(bundle, p);
}

export function badBundle(bundle: string, message: string, cause?: unknown): ShimError {
  return new ShimError('SHIM_BAD_BUNDLE', `bundle ${bundle}: ${message}`, {
    context: { bundle }, ...(cause === undefined ? {} : { cause }),
    suggestions: [`put a warden/v1 spec at ${ROOTFS_SPEC} in the image, or pass it in the annotation ${SPEC_ANNOTATION} (inline, or a path inside the rootfs)`],
  });
}
