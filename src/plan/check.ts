/** @module plan/check: every planned JSON object against the binary's QAPI schema, every -device driver against its device list. */
import { checkCommandArgs, indexSchema } from '../qemu/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

/** Keys every -device takes that device-list-properties does not list. */
const GENERIC_PROPS = new Set(['driver', 'id', 'bus']);

export function checkAgainstBinary(facts: Facts, b: PlanBuilder): void {
  if (facts.qemu.sandbox === false) {
    b.issue({ code: 'PLAN_UNSUPPORTED', from: '(base)', message: `QEMU ${facts.qemu.binary} was built without seccomp: -sandbox is not available, and warden does not run QEMU without it`, suggestion: 'use a QEMU built with libseccomp' });
  }
  const devices = new Set(facts.qemu.devices);
  for (const d of b.devices) {
    if (!devices.has(d.driver)) { b.issue({ code: 'PLAN_UNSUPPORTED', from: d.from, message: `QEMU ${facts.qemu.binary} has no device ${d.driver}` }); continue; }
    const props = facts.qemu.deviceProps?.[d.driver];
    if (props === undefined) continue;
    const unknown = Object.keys(d.value).filter((k) => !GENERIC_PROPS.has(k) && !props.includes(k));
    if (unknown.length > 0) b.issue({ code: 'PLAN_QAPI', from: d.from, message: `device ${d.driver} has no propert${unknown.length === 1 ? 'y' : 'ies'} ${unknown.join(', ')} in QEMU ${facts.qemu.binary}` });
  }
  if (facts.qemu.schema === undefined) return;
  const ix = indexSchema(facts.qemu.schema);
  for (const q of b.qapi) {
    const errs = checkCommandArgs(ix, q.command, q.value);
    if (errs === null || errs.length === 0) continue;
    b.issue({ code: 'PLAN_QAPI', from: q.from, message: `${q.command} object ${JSON.stringify(q.value)} does not fit QEMU's schema: ${errs.join('; ')}` });
  }
}
