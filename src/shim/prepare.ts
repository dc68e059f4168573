/**
 * @module shim/prepare: the imperative side of a bundle: mount the rootfs containerd hands
 * over, read config.json and the spec, refuse spec paths that leave the rootfs through a
 * symlink, create the disks' qcow2 overlays, write the spec the VM is created from; and
 * unmount again.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import type { ProcessRunner } from '../sys/index.js';
import { badBundle, deriveVm, inRootfs, rootfsOf, specSource, type DerivedVm, type OciConfig } from './bundle.js';
import { ShimError } from './errors.js';

export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

export interface PreparedVm extends DerivedVm {
  specFile: string;
}

async function run(runner: ProcessRunner, argv: string[], what: string): Promise<void> {
  const r = await runner.run(argv, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new ShimError('SHIM_IO', `${what} failed (exit ${String(r.code)})`, { context: { argv, stderr: r.stderr.trim() } });
}

/** Mounts containerd's rootfs mounts (snapshotter output) at BUNDLE/rootfs; returns how many were mounted. */
export async function mountRootfs(runner: ProcessRunner, bundle: string, mounts: readonly RootfsMount[]): Promise<number> {
  const target = join(bundle, 'rootfs');
  let n = 0;
  for (const m of mounts) {
    await run(runner, ['mount', '-t', m.type, ...(m.options.length > 0 ? ['-o', m.options.join(',')] : []), m.source, target], `mounting the rootfs of ${bundle}`);
    n++;
  }
  return n;
}

export async function unmountRootfs(runner: ProcessRunner, bundle: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await run(runner, ['umount', join(bundle, 'rootfs')], `unmounting the rootfs of ${bundle}`);
}

/** Whether BUNDLE/rootfs is a mount point now (the delete action, after a shim died, cannot know otherwise). */
export function rootfsMounted(bundle: string): boolean {
  const target = join(bundle, 'rootfs');
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
  } catch {
    return false;
  }
}

export function readOci(bundle: string): OciConfig {
  try {
    return JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciConfig;
  } catch (cause) {
    throw badBundle(bundle, 'config.json is missing or not JSON', cause);
  }
}

/** The VM's spec file in the bundle, overlays in the work directory, every spec path checked to stay in the rootfs. */
export async function prepareVm(runner: ProcessRunner, bundle: string, vmName: string): Promise<PreparedVm> {
  const oci = readOci(bundle);
  const rootfs = rootfsOf(oci, bundle);
  const src = specSource(oci);
  let specText: string;
  let specOrigin: string;
  if (src.kind === 'inline') {
    [specText, specOrigin] = [src.text, src.origin];
  } else {
    specOrigin = inRootfs(rootfs, src.path);
    try {
      specText = readFileSync(inside(bundle, rootfs, specOrigin), 'utf8');
    } catch (cause) {
      throw badBundle(bundle, `no VM spec: ${src.path} is not readable in the rootfs ${rootfs}`, cause);
    }
  }
  const workDir = realpathSync(join(bundle, 'work'));
  const d = deriveVm({ oci, specText, specOrigin, rootfs, workDir, vmName });
  for (const p of d.rootedPaths) inside(bundle, rootfs, p);
  for (const o of d.overlays) {
    await run(runner, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', o.base, '-F', o.baseFormat, o.path], `creating the overlay of disk ${o.disk}`);
  }
  const specFile = join(bundle, 'warden-vm.json');
  writeFileSync(specFile, `${JSON.stringify(d.spec, null, 2)}\n`, { mode: 0o600 });
  return { ...d, specFile };
}

/** `p` with symlinks resolved, refused unless it stays inside the rootfs (an image must not name host files). */
function inside(bundle: string, rootfs: string, p: string): string {
  let real: string;
  let top: string;
  try {
    [real, top] = [realpathSync(p), realpathSync(rootfs)];
  } catch (cause) {
    throw badBundle(bundle, `${p.slice(rootfs.length) || '/'} does not exist in the rootfs`, cause);
  }
  if (real !== top && !real.startsWith(top + sep)) throw badBundle(bundle, `${p.slice(rootfs.length)} resolves to ${real}, outside the rootfs`);
  return real;
}

