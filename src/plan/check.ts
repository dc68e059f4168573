/** @module plan/check: every planned JSON object against the binary's QAPI schema, every -device driver against its device list. */
import { checkCommandArgs, indexSchema } from '../qemu/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

export function checkAgainstBinary(facts: Facts, b: PlanBuilder): void {
  const devices = new Set(facts.qemu.devices);
  for (const d of b.devices) {
    if (!devices.has(d.driver)) b.issue({ code: 'PLAN_UNSUPPORTED', from: d.from, message: `QEMU ${facts.qemu.binary} has no device ${d.driver}` });
  }
  if (facts.qemu.schema === undefined) return;
  const ix = indexSchema(facts.qemu.schema);
  for (const q of b.qapi) {
    const errs = checkCommandArgs(ix, q.command, q.value);
    if (errs === null || errs.length === 0) continue;
    b.issue({ code: 'PLAN_QAPI', from: q.from, message: `${q.command} object ${JSON.stringify(q.value)} does not fit QEMU's schema: ${errs.join('; ')}` });
  }
}
