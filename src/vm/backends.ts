/**
 * @module vm/backends: the Backends port bound to the real modules: image chains
 * (src/image), the spec and the pure planner (src/spec, src/plan, src/qemu), the jailer
 * (src/jail, see jailer.ts; the direct launcher when not root), host networking (src/net)
 * and QMP (src/qmp).
 */
export { jailerConfig } from './jailer.js';
import { openSync, constants as C } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ownerFromUid } from '../image/index.js';
import { buildPlan } from '../plan/index.js';
import { parseSpec, resolveSpecPaths } from '../spec/index.js';
import type { JailerConfig } from '../jail/index.js';
import { applyHostActions, closeHostFds, parseUndoLog, undoHostActions, type UndoLog } from '../net/index.js';
import { QmpClient, type QmpEventName } from '../qmp/index.js';
import { NodeFs, NodeProcessRunner, loadNative, type Fs, type ProcessRunner } from '../sys/index.js';
import { DirectLauncher } from './direct.js';
import { LOGD_USER } from './logd.js';
import { JailerLauncher, jailerConfig } from './jailer.js';
import { cacheDirOf, factSources, identityPolicy, gatherFacts } from './facts.js';
import type { Backends, NetPort, QmpConn, QmpEvents } from './ports.js';

export interface RealBackendOptions {
  stateRoot: string;
  qemu?: string;
  /** Overrides of the jailer's configuration (its lease and runtime dirs are host-wide by default, see jailerConfig). */
  jailer?: Partial<JailerConfig>;
  /** Use the jailer (default: when running as root). */
  jail?: boolean;
  runner?: ProcessRunner;
  fs?: Fs;
  /**
   * The ovsdb-server socket Open vSwitch NICs are plumbed through (ovs-vsctl --db=unix:PATH);
   * default $WARDEN_OVS_DB, else ovs-vsctl's own default (the system daemon's db.sock).
   */
  ovsDb?: string | undefined;
}

function netPort(runner: ProcessRunner, ovsDb: string | undefined): NetPort {
  const native = loadNative();
  const openDevice = (path: string): number => openSync(path, C.O_RDWR) // Node opens every fd close-on-exec;
  return {
    async apply(vm, actions, record) {
      // The db socket is recorded into each OVS undo entry, so any later process undoes against the same ovsdb;
      // the VM name becomes each created device's owner alias, so cleanup by VM finds them.
      const applied = await applyHostActions(actions, { runner, native, openDevice, vm, ...(ovsDb === undefined ? {} : { ovsDb }),
        journal: (log: UndoLog) => record(log) });
      try {
        await record(applied.undo);
      } catch (err) {
        // Nobody else holds these yet: closing them lets the non-persistent TAPs vanish; the journalled log undoes the rest.
        closeHostFds(applied.fds, native);
        throw err;
      }
      return applied.fds;
    },
    async undo(log) {
      await undoHostActions(parseUndoLog(JSON.stringify(log)), { runner });
    },
  };
}

async function qmpConnect(path: string, timeoutMs: number): Promise<QmpConn> {
  const c = await QmpClient.connect({ path }, { timeoutMs });
  return {
    execute: (command, args, t, fds) => c.executeUntyped(command, args, { ...(t === undefined ? {} : { timeoutMs: t }), ...(fds === undefined ? {} : { fds: [...fds] }) }),
    events: (names) => c.events(names as readonly QmpEventName[]) as unknown as QmpEvents, // seen untyped, like execute
    close: () => c.close(),
  };
}

export function realBackends(o: RealBackendOptions): Backends {
  const runner = o.runner ?? new NodeProcessRunner();
  const fs = o.fs ?? new NodeFs();
  const qemu = o.qemu ?? '/usr/bin/qemu-system-x86_64';
  const useJail = o.jail ?? process.getuid?.() === 0;
  const config = jailerConfig(o.jailer);
  // QEMU's capabilities and the KVM verdict are cached on disk; within one process they are also kept in memory.
  const sources = factSources({ qemu, cacheDir: cacheDirOf(o.stateRoot), runner, fs });
  // Jailed, each VM leases a uid of its own at launch; the direct launcher runs QEMU as the caller.
  const identity = identityPolicy(useJail, config.uidRange);
  return {
    qemuBinary: qemu,
    parseSpec: (text, file) => resolveSpecPaths(parseSpec(text, file), dirname(resolve(file))) as unknown as Record<string, unknown>,
    facts: (spec, stateRoot, f) => gatherFacts(spec, sources, { stateRoot, identity, ...(f?.choosePorts === true ? { choosePorts: true } : {}), ...(f?.owner === undefined ? {} : { owner: ownerFromUid(f.owner) }) }),
    plan: (spec, facts) => buildPlan(spec, facts),
    jail: useJail ? new JailerLauncher(config, fs) : new DirectLauncher(),
    logUser: process.getuid?.() === 0 ? LOGD_USER : null,
    net: netPort(runner, o.ovsDb ?? (process.env['WARDEN_OVS_DB'] || undefined)),
    qmpConnect,
  };
}
