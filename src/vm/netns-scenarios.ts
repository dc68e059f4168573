/**
 * @module vm/netns-scenarios: lifecycle commands the network tests run in a child node process
 * inside a test-made netns (test/net/child.ts calls them by name); each opens its own
 * VmManager, as a separate `warden` command would, and returns plain JSON observations.
 */
import { openManager } from './open.js';
import { planTaps } from './testing.js';
import type { VmManager } from './manager.js';

export interface ScenarioArgs {
  stateRoot: string;
  /** The private ovsdb-server socket, given as the backends' ovsDb option ... */
  ovsDb?: string;
  /** ... or, when true, through $WARDEN_OVS_DB instead. */
  ovsDbViaEnv?: boolean;
}

export interface StartedVm {
  name: string;
  pid: number;
  taps: string[];
  serialLog: string;
}

export interface ScenarioError {
  code?: string;
  message: string;
  context?: Record<string, unknown>;
}

function manager(a: ScenarioArgs): VmManager {
  if (a.ovsDbViaEnv === true && a.ovsDb !== undefined) {
    process.env['WARDEN_OVS_DB'] = a.ovsDb;
    return openManager({ stateDir: a.stateRoot });
  }
  return openManager({ stateDir: a.stateRoot, ...(a.ovsDb === undefined ? {} : { backends: { ovsDb: a.ovsDb } }) });
}

/** `warden create` + `warden start` for each spec file, in order. */
export async function createAndStart(a: ScenarioArgs & { specs: string[] }): Promise<StartedVm[]> {
  const m = manager(a);
  const out: StartedVm[] = [];
  for (const file of a.specs) {
    const { name } = await m.create(file);
    const { record } = await m.start(name);
    const dir = m.store.paths(name);
    out.push({ name, pid: record.run?.qemu.pid ?? -1, taps: planTaps(dir.dir), serialLog: dir.serialLog });
  }
  return out;
}

/** `warden stop` of each VM; the recorded exit reasons. */
export async function stopAll(a: ScenarioArgs & { names: string[] }): Promise<Array<string | undefined>> {
  const m = manager(a);
  const reasons: Array<string | undefined> = [];
  for (const name of a.names) reasons.push((await m.stop(name, { timeoutS: 90 })).lastExit?.reason);
  return reasons;
}

/** `warden list`: every VM after reconciling, with what is still recorded to undo. */
export async function listVms(a: ScenarioArgs): Promise<Array<{ name: string; phase: string; reason?: string; pendingUndo: number }>> {
  return (await manager(a).list()).map((r) => ({ name: r.name, phase: r.phase, pendingUndo: r.undo?.length ?? 0,
    ...(r.lastExit?.reason === undefined ? {} : { reason: r.lastExit.reason }) }));
}

/** `warden create` + a `warden start` expected to fail: its error, and the VM's phase after. */
export async function startExpectingFailure(a: ScenarioArgs & { spec: string }): Promise<{ error?: ScenarioError; phase: string; taps: string[] }> {
  const m = manager(a);
  const { name } = await m.create(a.spec);
  let error: ScenarioError | undefined;
  try {
    await m.start(name);
  } catch (e) {
    const err = e as { code?: string; message: string; context?: Record<string, unknown> };
    error = { message: err.message, ...(err.code === undefined ? {} : { code: err.code }), ...(err.context === undefined ? {} : { context: err.context }) };
  }
  const dir = m.store.paths(name).dir;
  let taps: string[] = [];
  try { taps = planTaps(dir); } catch { /* no plan stored */ }
  return { ...(error === undefined ? {} : { error }), phase: (await m.store.read(name)).phase, taps };
}

/** Test teardown: `warden kill` of every VM of the state root (errors ignored: best effort). */
export async function killAll(a: ScenarioArgs): Promise<string[]> {
  const m = manager(a);
  const names = await m.store.list().catch(() => [] as string[]);
  for (const name of names) await m.kill(name).catch(() => undefined);
  return names;
}
