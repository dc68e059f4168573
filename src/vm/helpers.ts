/**
 * @module vm/helpers: starting the plan's helper programs (passt ...) in their own jails,
 * before QEMU: each helper's end of its socketpair is handed to its jail, QEMU's end joins
 * the fds QEMU gets. Every helper is recorded for undo before it exists, and in the VM's
 * record (uid, pid) once it runs, so inspect shows it and teardown stops it after QEMU.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';
import { procId } from './proc.js';
import type { HelperRun, UndoRecord } from './record.js';
import type { StartCtx } from './start.js';

type RecordUndo = (c: StartCtx, u: UndoRecord) => Promise<void>;
import type { Step } from './steps.js';

/** A helper's undo entry (one per helper; teardown stops it like QEMU's jail). */
export function helperUndo(jailName: string, owner: string): UndoRecord {
  return { kind: 'helper', jailName, owner };
}

/** One socketpair per `pair` name: [QEMU's end, the helper's end]. */
function socketPairs(c: StartCtx): Map<string, [number, number]> {
  const native = loadNative();
  const pairs = new Map<string, [number, number]>();
  for (const f of c.plan!.fds) if (f.kind === 'socketpair' && !pairs.has(f.pair)) pairs.set(f.pair, native.socketpair());
  for (const [pair, [qemuEnd]] of pairs) c.fds.adopt(pair, qemuEnd); // closed with QEMU's other fds once QEMU holds its copy
  return pairs;
}

async function launchOne(c: StartCtx, record: RecordUndo, h: NonNullable<StartCtx['plan']>['helpers'][number], pairs: Map<string, [number, number]>, stderr: number): Promise<HelperRun> {
  await record(c, helperUndo(h.jail.name, c.paths.dir));
  const fds = new Map(h.fds.map((f) => {
    const end = f.kind === 'socketpair' ? pairs.get(f.pair)?.[1] : undefined;
    if (end === undefined) throw new VmError('VM_START_FAILED', `helper ${h.jail.name} of VM ${c.rec.name} needs fd ${f.name}, which is not a socketpair the plan names`, { context: { vm: c.rec.name, helper: h.jail.name } });
    return [f.name, end] as const;
  }));
  const statusFile = join(c.paths.dir, `${h.jail.name}.status`);
  rmSync(statusFile, { force: true });
  const l = await c.d.backends.jail.launch(h.jail, fds, stderr, statusFile, c.paths.dir);
  const proc = await procId(c.d.fs, l.pid);
  if (proc === null) throw new VmError('VM_START_FAILED', `helper ${h.kind} (${h.jail.name}) of VM ${c.rec.name} exited as soon as it started`, { context: { vm: c.rec.name, helper: h.jail.name, log: c.paths.qemuLog }, suggestions: [`read ${c.paths.qemuLog} (the helpers write their errors there)`] });
  return { kind: h.kind, from: h.from, jailName: h.jail.name, proc, uid: l.uid, gid: l.gid, cgroups: l.cgroups, ...(l.statusFile === undefined ? {} : { statusFile: l.statusFile }) };
}

/** The step; `record` is start's write-ahead undo recorder. */
export const helpersStep = (record: RecordUndo): Step<StartCtx> => ({
  name: 'helpers', label: 'starting helpers in their own jails',
  async run(c) {
    const plan = c.plan!;
    if (plan.helpers.length === 0) return;
    const pairs = socketPairs(c);
    const stderr = c.fds.logs.writeEnd('qemu-stderr');
    const runs: HelperRun[] = [];
    try {
      for (const h of plan.helpers) {
        runs.push(await launchOne(c, record, h, pairs, stderr));
        c.rec = { ...c.rec, helpers: runs, updatedAt: c.d.now() };
        await c.d.store.write(c.rec);
      }
    } finally {
      // Each helper holds its own copy now (or failed to start): ours must go, or a helper would never see QEMU's end close.
      const native = loadNative();
      for (const [, [, helperEnd]] of pairs) native.closeFd(helperEnd);
    }
  },
});
