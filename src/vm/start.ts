/**
 * @module vm/start: starting a VM as named steps: host facts, plan, claim
 * disks, host network, open fds, jail (QEMU paused with -S), QMP on the pre-opened socket,
 * cont. Every host change is recorded in the VM's record before it is made, so a failure
 * here, or a crash of this process, is undone by teardown from the record.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chainFiles, ownerFromUid, type ImageChain } from '../image/index.js';
import type { Facts } from '../plan/index.js';
import type { Spec } from '../spec/index.js';
import { loadNative } from '../sys/index.js';
import { openSealedCopies, seedFromTemplates } from './boot-fds.js';
import { SealedCopyCache } from './sealed-cache.js';
import type { HostIssue } from './facts.js';
import { forwardsOf, type ForwardInfo } from './endpoints.js';
import { VmError } from './errors.js';
import { OpenFds } from './fds.js';
import { QEMU_LOG_CAP } from './logd.js';
import { claimsFor, findConflict } from './claims.js';
import { expectsProcess } from './machine.js';
import { procId } from './proc.js';
import type { Launched, PlanView, QmpConn, SpecView } from './ports.js';
import { waitGone, type TeardownDeps } from './teardown.js';
import type { VmPaths } from './store.js';
import type { ProcId, UndoRecord, VmRecord } from './record.js';
import type { Step } from './steps.js';
import { helpersStep } from './helpers.js';
import { seedStep } from './cloudinit.js';

export interface StartCtx {
  d: TeardownDeps;
  rec: VmRecord;
  spec: SpecView;
  paths: VmPaths;
  warnings: string[];
  kvmUsable: boolean;
  chains: Record<string, ImageChain>;
  facts?: Facts;
  /** User-mode forwards with their host ports (host: 0 chosen in the facts step), for the run record. */
  forwards?: ForwardInfo[];
  plan?: PlanView;
  fds: OpenFds;
  launched?: Launched;
  qmp?: QmpConn;
  /** The VM's log writer, once started. */
  logd?: ProcId;
  /** Settles once the log writer runs as its user (awaited by the jail step, which overlaps it). */
  logdReady?: Promise<void>;
  /** The run record's write, overlapped with QEMU's own start-up (awaited by the qmp step). */
  runRecorded?: Promise<void>;
}

/**
 * This process's sealed boot-file copies: a manager that lives on (the daemon, a test, the
 * bench) copies an unchanged kernel and initrd once, not at every start (vm/sealed-cache).
 */
let bootCopies: SealedCopyCache | undefined;

/** The log stream that becomes QEMU's stderr (qemu.log). */
const QEMU_STDERR = 'qemu-stderr';

/** Persists a host change before it is made (write-ahead), so another process can undo it. */
export async function recordUndo(c: StartCtx, u: UndoRecord): Promise<void> {
  noteUndo(c, u);
  await c.d.store.write(c.rec);
}

/** Adds an undo entry to the record in memory only: for what needs no undo to go away, persisted with the next write. */
function noteUndo(c: StartCtx, u: UndoRecord): void {
  // One entry per kind, except helpers: one per helper jail.
  const undo = (c.rec.undo ?? []).filter((x) => x.kind !== u.kind || (x.kind === 'helper' && u.kind === 'helper' && x.jailName !== u.jailName));
  c.rec = { ...c.rec, undo: [...undo, u], updatedAt: c.d.now() };
}

/** Host facts from the one gatherer validate and plan use too (vm/facts): what start plans with is what `warden plan` shows. */
const facts: Step<StartCtx> = {
  name: 'facts', label: 'gathering host facts (accelerator, disk chains, boot files, firmware)',
  async run(c) {
    const spec = c.rec.spec as unknown as Spec;
    // The VM's owner (set by the daemon at create): the one confined walk checks its access to writable files.
    const g = await c.d.backends.facts(spec, c.d.store.root, { choosePorts: true, ...(c.rec.owner === undefined ? {} : { owner: c.rec.owner }) });
    if (g.kvmFallback !== null) c.warnings.push(`KVM is not usable (${g.kvmFallback}): falling back to TCG, which is much slower`);
    const first = g.issues[0];
    if (first !== undefined) throw hostIssueError(c.rec.name, first);
    c.facts = g.facts;
    c.kvmUsable = g.facts.kvmUsable;
    c.chains = g.facts.chains;
    c.forwards = forwardsOf(spec, g.facts);
  },
};

/** A disk the image module refused keeps its own error (IMAGE_*); a missing boot file is named with its field. */
function hostIssueError(vm: string, i: HostIssue): Error {
  if (i.cause instanceof Error && i.code !== 'SPEC_IMAGE') return i.cause;
  return new VmError('VM_START_FAILED', `${i.from} of VM ${vm}: ${i.message}`, {
    context: { vm, field: i.from }, ...(i.cause === undefined ? {} : { cause: i.cause }),
    suggestions: ['restore the file; the VM keeps the path its spec had at create (warden validate checks the spec file)'],
  });
}

const plan: Step<StartCtx> = {
  name: 'plan', label: 'planning',
  async run(c) {
    c.plan = c.d.backends.plan(c.rec.spec as unknown as Spec, c.facts!);
    writeFileSync(join(c.paths.dir, 'plan.json'), `${JSON.stringify(c.plan, null, 2)}\n`);
  },
};

/** Under the store-wide lock: no other live VM may hold a layer we write, or write a layer we hold. */
const claim: Step<StartCtx> = {
  name: 'claim', label: 'claiming disk images',
  async run(c) {
    const mine = claimsFor(c.spec, c.chains);
    const lock = await c.d.store.lockRoot(`claim disks for ${c.rec.name}`);
    try {
      const others = [];
      for (const name of await c.d.store.list()) {
        if (name === c.rec.name) continue;
        const o = await c.d.store.tryRead(name).catch(() => null);
        if (o?.disks !== undefined && expectsProcess(o.phase)) others.push({ name, disks: o.disks });
      }
      const hit = findConflict(mine, others);
      if (hit !== null) {
        throw new VmError('VM_DISK_IN_USE', `cannot start VM ${c.rec.name}: ${hit.mine.path} is ${hit.theirs.writable ? 'written' : 'used'} by VM ${hit.other}`, {
          context: { vm: c.rec.name, path: hit.mine.path, other: hit.other, otherPath: hit.theirs.path, writable: hit.mine.writable },
          suggestions: [`stop ${hit.other} first, or give this VM its own overlay: qemu-img create -f qcow2 -b ${hit.mine.path} -F FORMAT NEW.qcow2`],
        });
      }
      c.rec = { ...c.rec, phase: 'starting', disks: mine, updatedAt: c.d.now() };
      // The sockets' undo entry rides with this write (removing a socket path that is not there
      // yet is harmless), so the open step needs no fsync'd write of its own before making them.
      noteUndo(c, { kind: 'sockets', paths: socketPaths(c) });
      await c.d.store.write(c.rec);
    } finally {
      await lock.release();
    }
  },
};

/** The listening sockets the plan has the manager make (QMP, serial, VNC). */
function socketPaths(c: StartCtx): string[] {
  return c.plan!.fds.flatMap((f) => (f.kind === 'unix-listen' ? [f.path] : []));
}

const network: Step<StartCtx> = {
  name: 'network', label: 'setting up host networking',
  async run(c) {
    const actions = c.plan!.hostActions;
    if (actions.length === 0) return;
    const fds = await c.d.backends.net.apply(c.rec.name, actions, (log) => recordUndo(c, { kind: 'net', log }));
    for (const [name, fd] of fds) c.fds.adopt(name, fd);
  },
};

const open: Step<StartCtx> = {
  name: 'open', label: 'opening files, sockets and logs',
  async run(c) {
    const sockets = socketPaths(c);
    const noted = c.rec.undo?.find((u) => u.kind === 'sockets');
    if (noted?.kind !== 'sockets' || noted.paths.join('\0') !== sockets.join('\0')) await recordUndo(c, { kind: 'sockets', paths: sockets });
    const probed = chainFiles(Object.values(c.chains));
    seedFromTemplates(c.plan!.fds, c.rec.name); // the VM's UEFI vars, at its first start
    // The VM's owner must be able to read its kernel and initrd (checked on the inode opened).
    const owner = c.rec.owner === undefined ? null : ownerFromUid(c.rec.owner);
    const native = loadNative();
    for (const [name, fd] of openSealedCopies(c.plan!.fds, c.rec.name, native, owner, bootCopies ??= new SealedCopyCache(native))) c.fds.adopt(name, fd);
    c.fds.logs.banner = `--- warden: VM ${c.rec.name} starting at ${c.d.now()} ---\n`;
    await c.fds.openAll(c.plan!.fds, c.rec.name, probed);
    const missing = c.plan!.fds.filter((f) => f.kind !== 'socketpair' && !c.fds.byName.has(f.name)); // socketpairs: the helpers step
    if (missing.length > 0) throw new VmError('VM_START_FAILED', `no fd for ${missing.map((f) => f.name).join(', ')} of VM ${c.rec.name}`, { context: { vm: c.rec.name } });
    c.fds.logs.add(QEMU_STDERR, c.paths.qemuLog, QEMU_LOG_CAP, c.rec.name);
    // Recorded after the spawn (its pid is not known before); the writer needs no undo to go
    // away, it exits when the last write end closes, so the record only lets teardown wait for
    // it (and a reconcile after a crash finds no writer still holding the logs). Its ready wait
    // (dropping privileges) overlaps this write and the jail's launch.
    const writer = c.fds.logs.start(c.rec.name, c.d.backends.logUser);
    c.logdReady = writer.ready;
    writer.ready.catch(() => undefined); // awaited by the jail step; a failure must not go unhandled meanwhile
    if (writer.pid === undefined) await writer.ready; // the spawn itself failed: its error
    const id = await procId(c.d.fs, writer.pid!);
    if (id !== null) {
      c.logd = id;
      await recordUndo(c, { kind: 'logd', proc: id });
    }
  },
  undo: (c) => c.fds.close(true),
};

const jail: Step<StartCtx> = {
  name: 'jail', label: 'starting QEMU in its jail (paused)',
  async run(c) {
    const spec = c.plan!.jail;
    await recordUndo(c, { kind: 'jail', jailName: spec.name, owner: c.paths.dir });
    const statusFile = join(c.paths.dir, 'qemu.status');
    rmSync(statusFile, { force: true });
    try {
      c.launched = await c.d.backends.jail.launch(spec, c.fds.byName, c.fds.logs.writeEnd(QEMU_STDERR), statusFile, c.paths.dir);
    } catch (err) {
      throw nameTaken(c, err) ?? err;
    }
    await c.logdReady;
    // Protections planned but off here (no Landlock in this kernel, no jail without root) are said, not skipped silently.
    c.warnings.push(...c.launched.protectionsOff.map((p) => `protection off: ${p}`));
    // QEMU holds its copies now; ours must go before anyone connects (our listener would accept).
    await c.fds.close(false);
    // The leased uid is a runtime fact: the run record has it, plan.json keeps the policy. Written
    // while QEMU starts up (the qmp step awaits it): the jail's undo entry, written before the
    // launch, already lets teardown find QEMU if this process dies before it lands.
    c.runRecorded = recordRun(c, spec.name);
    c.runRecorded.catch(() => undefined); // awaited by the qmp step
  },
};

/** A jail of the same name held by someone else: another state root runs a VM of this name. */
function nameTaken(c: StartCtx, err: unknown): VmError | null {
  const e = err as { code?: string; context?: Record<string, unknown> };
  if (e?.code !== 'JAIL_BUSY' || e.context?.['jail'] !== c.plan!.jail.name) return null;
  return new VmError('VM_NAME_IN_USE', `cannot start VM ${c.rec.name}: a VM of that name already runs on this host under another state root (jail "${c.plan!.jail.name}" is live)`, {
    context: { vm: c.rec.name, jail: c.plan!.jail.name }, cause: err,
    suggestions: ['running VMs share host-wide names (jail, cgroup, TAP devices): stop the other one, or give this VM another name'],
  });
}

async function recordRun(c: StartCtx, jailName: string): Promise<void> {
  const l = c.launched!;
  const qemu = await procId(c.d.fs, l.pid);
  if (qemu === null) throw await diedWithLastWords(c, undefined);
  const launcher = l.launcherPid === undefined ? null : await procId(c.d.fs, l.launcherPid);
  c.rec = { ...c.rec, updatedAt: c.d.now(), run: {
    qemu, ...(launcher === null ? {} : { launcher }), uid: l.uid, gid: l.gid,
    accel: c.plan!.argv[c.plan!.argv.indexOf('-accel') + 1] === 'kvm' ? 'kvm' : 'tcg', startedAt: c.d.now(), jailName, cgroups: l.cgroups,
    ...(l.statusFile === undefined ? {} : { statusFile: l.statusFile }), protectionsOff: l.protectionsOff, ...(c.logd === undefined ? {} : { logd: c.logd }),
    ...(c.forwards === undefined || c.forwards.length === 0 ? {} : { forwards: c.forwards }),
  } };
  await c.d.store.write(c.rec);
}

const qmp: Step<StartCtx> = {
  name: 'qmp', label: 'connecting to QMP',
  async run(c) {
    try {
      c.qmp = await c.d.backends.qmpConnect(c.paths.qmpSocket, 10_000);
    } catch (err) {
      await c.runRecorded; // VM_QEMU_DIED with QEMU's last words when it is gone already
      throw (await qemuDied(c, err)) ?? err;
    }
    await c.runRecorded;
    const st = (await c.qmp.execute('query-status')) as { status: string };
    const expected = c.facts?.incoming === 'defer' ? ['inmigrate'] : ['prelaunch', 'paused']; // restore: QEMU waits for the stream
    if (!expected.includes(st.status)) {
      throw new VmError('VM_START_FAILED', `QEMU of VM ${c.rec.name} is "${st.status}" before cont, expected paused`, { context: { vm: c.rec.name, status: st.status } });
    }
  },
  undo: async (c) => { await c.qmp?.close(); },
};

/** VM_QEMU_DIED with QEMU's last words when QEMU is gone (a failure talking to it is then only a symptom). */
async function qemuDied(c: StartCtx, cause: unknown): Promise<VmError | null> {
  const run = c.rec.run;
  if (run === undefined || !(await waitGone(c.d.fs, run.qemu, 500))) return null;
  await waitGone(c.d.fs, run.launcher, 2000);
  return diedWithLastWords(c, cause);
}

/** VM_QEMU_DIED naming the last line QEMU wrote to its log, once the log writer has written all of it. */
async function diedWithLastWords(c: StartCtx, cause: unknown): Promise<VmError> {
  await waitGone(c.d.fs, c.logd, 2000); // it exits after the last write end (QEMU's, its jail's) closes
  const log = (() => { try { return readFileSync(c.paths.qemuLog, 'utf8').trim().split('\n'); } catch { return []; } })();
  const last = (log[log.length - 1] ?? '').replace(/^\S+Z qemu-system-\S+: /, '');
  return new VmError('VM_QEMU_DIED', `QEMU of VM ${c.rec.name} exited while starting${last ? `: ${last}` : ''}`, {
    context: { vm: c.rec.name, log: c.paths.qemuLog, stderr: log.slice(-10) }, cause, suggestions: [...knownCause(last), `read ${c.paths.qemuLog}`],
  });
}

/** A hint for QEMU's last words when they have a usual cause. */
export function knownCause(last: string): string[] {
  const fwd = /Could not set up host forwarding rule '(tcp|udp):([^:]*):(\d+)-/.exec(last);
  if (fwd) return [`host port ${fwd[2] || '0.0.0.0'}:${fwd[3]} (${fwd[1]}) is probably taken, by another VM's forward or another program: ss -lnp 'sport = :${fwd[3]}'`];
  return [];
}

const cont: Step<StartCtx> = {
  name: 'cont', label: 'starting the vCPUs',
  async run(c) {
    await c.qmp!.execute('cont').catch(async (err: unknown) => { throw (await qemuDied(c, err)) ?? err; });
    const st = (await c.qmp!.execute('query-status')) as { status: string };
    if (st.status !== 'running') throw new VmError('VM_START_FAILED', `QEMU of VM ${c.rec.name} is "${st.status}" after cont`, { context: { vm: c.rec.name, status: st.status } });
    c.rec = { ...c.rec, phase: 'running', updatedAt: c.d.now(), warnings: c.warnings };
    await c.d.store.write(c.rec);
  },
};

/** The start sequence, in order. */
export const START_STEPS: ReadonlyArray<Step<StartCtx>> = [facts, plan, seedStep, claim, network, open, helpersStep(recordUndo), jail, qmp, cont];
