/**
 * @module vm/facts: the one place host facts are gathered for planning (QEMU's capabilities,
 * the KVM verdict, disk chains, boot files, firmware, the VM's state paths, the uid policy),
 * used alike by `validate`, `plan`, `start` and the daemon, so `plan` shows what `start` does.
 */
import { accessSync, constants as C, existsSync, realpathSync, statSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { callerOwner, loadHostPolicy, ownerAccessCheck, resolveTarget, walkChainConfined, type HostPolicy, type ImageChain, type Owner } from '../image/index.js';
import { WardenError } from '../errors/index.js';
import { PASST_BINARY, SWTPM_BINARY, tpmVersion, type Facts } from '../plan/index.js';
import { loadProgramView, loadQemuCaps, type ProgramView, type QemuCaps } from '../qemu/index.js';
import type { Disk, Spec } from '../spec/index.js';
import { NodeFs, NodeProcessRunner, type Fs, type ProcessRunner } from '../sys/index.js';
import { sha256 } from '../sys/sha256.js';
import { detectKvm, type KvmVerdict } from './accel.js';
import { jailerConfig } from './jailer.js';
import { shareFacts } from './facts-shares.js';
import { StateStore } from './store.js';

/** A host fact that could not be had, located at the spec field that asked for it. */
export interface HostIssue {
  /** The spec path, e.g. disks[0].image or boot.kernel. */
  from: string;
  code: string;
  message: string;
  suggestion?: string;
  cause?: unknown;
}

export interface GatheredFacts {
  facts: Facts;
  /** Disks, chains and boot files that failed (facts.chains lacks those disks). */
  issues: HostIssue[];
  /** Why KVM is not usable when accel: auto falls back to TCG (each verb says it in its own words), else null. */
  kvmFallback: string | null;
}

/** The probes behind the facts; one per process (the daemon, a CLI verb) so each runs once. */
export interface FactSources {
  qemu: string;
  /** Where QEMU's capabilities and the KVM verdict are cached (the state root's cache: one probe for all verbs). */
  cacheDir: string;
  caps(): Promise<QemuCaps>;
  kvm(): Promise<KvmVerdict>;
  /** A helper program's view (its binary and libraries, one ldd), kept while every file it names exists; null: not installed. */
  programView(binary: string): Promise<ProgramView | null>;
}

/**
 * stat() done synchronously (the same result and error): one small page-cache call, where a
 * thread-pool trip costs a pool thread's wake-up, which a loaded host makes slow (issue 16).
 */
const statNow = async (p: string): Promise<{ size: number; mtimeMs: number }> => statSync(p);

/** `kvmCacheDir`: where the KVM verdict is cached when not with the capabilities (plan --cache-dir moves only those). */
export function factSources(o: { qemu: string; cacheDir: string; kvmCacheDir?: string; runner?: ProcessRunner; fs?: Fs }): FactSources {
  const runner = o.runner ?? new NodeProcessRunner();
  const fs = o.fs ?? new NodeFs();
  let caps: Promise<QemuCaps> | undefined;
  let kvm: Promise<KvmVerdict> | undefined;
  const views = new Map<string, Promise<ProgramView | null>>();
  return {
    qemu: o.qemu, cacheDir: o.cacheDir,
    caps() {
      caps ??= loadQemuCaps({ runner, fs, stat: statNow, cacheDir: o.cacheDir }, o.qemu)
        .then(({ cached: _cached, ...c }) => c)
        .catch((err: unknown) => { caps = undefined; throw err; });
      return caps;
    },
    kvm: () => (kvm ??= detectKvm({ runner, qemu: o.qemu, cacheDir: o.kvmCacheDir ?? o.cacheDir })),
    async programView(binary) {
      const held = await views.get(binary)?.catch(() => null);
      // A long-lived process (the daemon) re-resolves once an upgrade removed a file the view names.
      if (held && [held.binary, ...held.libraries].every((f) => existsSync(f.source))) return held;
      // On disk beside QEMU's capabilities: a CLI process would otherwise run ldd at every validate and start.
      const fresh = loadProgramView({ runner, fs, stat: statNow, cacheDir: o.cacheDir }, binary);
      views.set(binary, fresh);
      return fresh;
    },
  };
}

export interface FactOptions {
  /** The state root; the VM's directory is ROOT/vms/NAME (as the state store makes it). */
  stateRoot: string;
  /** Plan as if KVM were (not) usable instead of asking the probe. */
  kvm?: boolean;
  /** Choose a free host port for each forward with host: 0 (start does; plan shows 0, "chosen at start"). */
  choosePorts?: boolean;
  /** The uid policy (default: identityPolicy()), or a fixed uid/gid to plan for. */
  identity?: Facts['identity'];
  /** Whose access the walk checks for files QEMU gets writable (a daemon VM's owner; null: nobody); default: the caller. */
  owner?: Owner | null;
}

/**
 * The state root's short id (5 of a-z2-7, from a hash of its real path): host-wide names carry
 * it (plan/scope), so VMs of one name under two state roots do not meet in the jail, cgroup or
 * TAP namespaces. A root not made yet is named by its absolute path, as it will be once made.
 */
export function stateRootScope(stateRoot: string): string {
  let real = resolve(stateRoot);
  try { real = realpathSync(real); } catch { /* not made yet */ }
  const h = sha256(`warden-state-root\0${real}`);
  let out = '';
  for (let i = 0; i < 5; i++) out += 'abcdefghijklmnopqrstuvwxyz234567'[h[i]! & 31];
  return out;
}

/** The state root's cache directory (QEMU capabilities, the KVM verdict). */
export function cacheDirOf(stateRoot: string): string {
  return join(stateRoot, 'cache');
}

/** Every fact the planner needs for `spec`; what could not be had is in `issues`, never thrown (QEMU's probe failing is). */
export async function gatherFacts(spec: Spec, src: FactSources, o: FactOptions): Promise<GatheredFacts> {
  const [qemu, kvm, files] = await Promise.all([src.caps(), kvmFact(spec, src, o.kvm), hostFiles(spec, o.owner)]);
  const kvmUsable = kvm.usable;
  const facts: Facts = {
    qemu, kvmUsable, chains: files.chains,
    identity: o.identity ?? identityPolicy(),
    paths: vmFactPaths(o.stateRoot, spec.name),
    host: { vhostNet: existsSync('/dev/vhost-net') },
    scope: stateRootScope(o.stateRoot),
  };
  const fw = firmwareFor(spec);
  if (fw !== undefined) facts.firmware = fw;
  facts.helpers = await helperFacts(spec, src);
  const shares = await shareFacts(spec, src, o.owner);
  if (shares.shares !== undefined) Object.assign(facts, { shares: shares.shares, helpers: { ...facts.helpers, ...shares.helpers } });
  if (o.choosePorts === true) {
    const ports = await chooseForwardPorts(spec);
    if (Object.keys(ports).length > 0) facts.forwardPorts = ports;
  }
  return { facts, issues: [...files.issues, ...shares.issues], kvmFallback: !kvm.usable && spec.accel === 'auto' ? kvm.reason : null };
}

/** The helper programs this spec needs, with their views (one ldd each); a helper not installed is absent. */
async function helperFacts(spec: Spec, src: FactSources): Promise<NonNullable<Facts['helpers']>> {
  const out: NonNullable<Facts['helpers']> = {};
  const swtpm = tpmVersion(spec) === null ? null : await src.programView(SWTPM_BINARY);
  if (swtpm !== null) out.swtpm = swtpm;
  if (!spec.networks.some((n) => n.type === 'user' && n.backend !== 'slirp')) return out;
  const passt = await src.programView(PASST_BINARY);
  return passt === null ? out : { ...out, passt };
}

/** Whether KVM is usable as start decides it: the spec's tcg needs no probe, a flag overrides it, else the cached probe. */
async function kvmFact(spec: Spec, src: FactSources, flag: boolean | undefined): Promise<{ usable: boolean; reason: string }> {
  if (spec.accel === 'tcg') return { usable: false, reason: 'the spec says tcg' };
  if (flag !== undefined) return { usable: flag, reason: flag ? '' : 'planned without KVM on request' };
  return src.kvm();
}

/**
 * The uid policy: jailed (as root), every VM gets a uid of its own leased from the jailer's
 * range when it launches (the run record names it); unjailed, QEMU runs as the caller.
 */
export function identityPolicy(jailed = (process.getuid?.() ?? 0) === 0, range: { first: number; count: number } = jailerConfig().uidRange): Facts['identity'] {
  if (jailed) return { lease: { first: range.first, last: range.first + range.count - 1 } };
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** The VM's state paths, named as the state store names them (one source for plan and start). */
export function vmFactPaths(stateRoot: string, name: string): Facts['paths'] {
  const p = new StateStore(stateRoot, new NodeFs()).paths(name);
  return {
    stateDir: p.dir, qmpSocket: p.qmpSocket, serialSocket: p.serialSocket, serialLog: p.serialLog,
    uefiVars: p.uefiVars, vncSocket: p.vncSocket, guestAgentSocket: join(p.dir, 'qga.sock'),
  };
}

/** OVMF builds as Debian (ovmf) and Fedora (edk2-ovmf) install them: [code, vars template]. */
const OVMF_PLAIN: ReadonlyArray<readonly [string, string]> = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
  ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'],
];
const OVMF_SECURE: ReadonlyArray<readonly [string, string]> = [
  ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', '/usr/share/OVMF/OVMF_VARS_4M.ms.fd'],
  ['/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd', '/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd'],
];

/**
 * The firmware pair for the spec: none for BIOS; the secure-boot build for secureBoot (or,
 * where the host lacks it, the plain one marked as such, so the planner names what is missing).
 */
export function firmwareFor(spec: Pick<Spec, 'firmware' | 'secureBoot'>, exists: (p: string) => boolean = existsSync): Facts['firmware'] | undefined {
  if (spec.firmware !== 'uefi') return undefined;
  const pick = (pairs: ReadonlyArray<readonly [string, string]>) => pairs.find(([c, v]) => exists(c) && exists(v));
  const secure = spec.secureBoot ? pick(OVMF_SECURE) : undefined;
  if (secure !== undefined) return { uefiCode: secure[0], uefiVarsTemplate: secure[1], secureBoot: true };
  const plain = pick(OVMF_PLAIN);
  return plain === undefined ? undefined : { uefiCode: plain[0], uefiVarsTemplate: plain[1], secureBoot: false };
}

/**
 * A free port for each forward with host: 0, by spec path: bound on its address with port 0
 * (the kernel picks), all held until every one is picked, then released for QEMU to bind. A
 * program that takes one in between makes QEMU fail at start with its "host forwarding" words.
 */
export async function chooseForwardPorts(spec: Pick<Spec, 'networks'>): Promise<Record<string, number>> {
  const held: Array<{ key: string; port: number; close: () => Promise<void> }> = [];
  try {
    for (const [i, n] of spec.networks.entries()) {
      for (const [k, f] of (n.type === 'user' ? n.forwards ?? [] : []).entries()) {
        if (f.host === 0) held.push({ key: `networks[${i}].forwards[${k}]`, ...(await bindAnyPort(f.proto, f.hostAddress)) });
      }
    }
    return Object.fromEntries(held.map((h) => [h.key, h.port]));
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
}

async function bindAnyPort(proto: 'tcp' | 'udp', host: string): Promise<{ port: number; close: () => Promise<void> }> {
  if (proto === 'udp') {
    const sock = createSocket('udp4');
    await new Promise<void>((res, rej) => { sock.once('error', rej); sock.bind(0, host, () => res()); });
    return { port: sock.address().port, close: () => new Promise<void>((r) => sock.close(() => r())) };
  }
  const server = createServer();
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen({ port: 0, host, exclusive: true }, () => res()); });
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Each disk's chain under the image policy, and the boot files; failures located at their spec field. */
async function hostFiles(spec: Spec, owner: Owner | null | undefined): Promise<{ chains: Record<string, ImageChain>; issues: HostIssue[] }> {
  const chains: Record<string, ImageChain> = {};
  const issues: HostIssue[] = [];
  let host: HostPolicy | null = null;
  try { host = loadHostPolicy(); } catch (cause) { issues.push(...spec.disks.map((_, i) => issueOf(`disks[${i}].image`, cause))); }
  if (host !== null) {
    const policy = host;
    await Promise.all(spec.disks.map(async (d, i) => {
      try { chains[d.name] = await chainOf(d, i, policy, owner); } catch (cause) { issues.push(issueOf(`disks[${i}].image`, cause)); }
    }));
  }
  for (const key of ['kernel', 'initrd'] as const) {
    const p = spec.boot?.[key];
    if (p === undefined) continue;
    const err = await bootFileError(p);
    const denied = err === null ? bootOwnerDenied(p, `boot.${key}`, owner === undefined ? callerOwner() : owner) : null;
    if (denied !== null) issues.push(issueOf(`boot.${key}`, denied));
    if (err !== null) issues.push({ from: `boot.${key}`, code: 'SPEC_FILE', message: err, suggestion: 'the manager reads it (QEMU gets a sealed copy by fd): it must be a regular file root, or the user running warden, can read' });
  }
  return { chains, issues };
}

/**
 * The one call into the chain walker (src/image walkChainConfined): the top layer's format
 * from the spec, backing formats as recorded, json: and protocol backings refused, every
 * file confined to the disk's allowed places and the host policy's image directories, and
 * files given writable checked against `owner` (undefined: the caller, as the CLI acts).
 */
export function chainOf(d: Disk, index: number, host: HostPolicy, owner?: Owner | null): Promise<ImageChain> {
  return walkChainConfined({ ...d, from: `disks[${index}]` }, host, owner === undefined ? {} : { owner });
}

function issueOf(from: string, cause: unknown): HostIssue {
  const message = cause instanceof Error ? cause.message : String(cause);
  if (!(cause instanceof WardenError)) return { from, code: 'SPEC_IMAGE', message, cause };
  const hint = cause.suggestions[0];
  return { from, code: cause.code, message, cause, ...(hint === undefined ? {} : { suggestion: hint }) };
}

/**
 * The owner's read access to a boot file, as an early error (IMAGE_OWNER_DENIED) for plan and
 * validate; start checks it again on the inode it opens (vm/boot-fds). Null: allowed.
 */
function bootOwnerDenied(path: string, what: string, owner: Owner | null): unknown {
  if (owner === null || owner.uid === 0) return null;
  try { ownerAccessCheck(owner)(resolveTarget(resolve(path)), what, false); return null; } catch (err) { return err; }
}

/** Why a boot file cannot be read by the manager, or null. */
async function bootFileError(path: string): Promise<string | null> {
  try {
    // Synchronously, as statNow: two small calls, not two thread-pool trips.
    const st = statSync(path);
    if (!st.isFile()) return `${path} is not a regular file`;
    accessSync(path, C.R_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be read (${code})`;
  }
}
