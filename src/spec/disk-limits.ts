/** @module spec/disk-limits: a disk's I/O limits (QEMU throttle group), their schema and the one mapping to QEMU's ThrottleLimits. */
import * as z from 'zod';
import { lazySchema, once } from './lazy.js';
import { parseSize } from './units.js';

/** QEMU's THROTTLE_VALUE_MAX: larger limits are refused by the throttle code. */
const MAX = 1e15;

/** The fields, spec name → QEMU ThrottleLimits name. */
export const LIMIT_FIELDS = {
  iops: 'iops-total', iopsRead: 'iops-read', iopsWrite: 'iops-write',
  bps: 'bps-total', bpsRead: 'bps-read', bpsWrite: 'bps-write',
} as const;
export type LimitField = keyof typeof LIMIT_FIELDS;

/** Refuses a total next to a read or write limit of the same kind, as QEMU does ("cannot be used at the same time"). */
export function conflictingLimits(l: Partial<Record<LimitField, number | undefined>>): string[] {
  const out: string[] = [];
  for (const kind of ['iops', 'bps'] as const) {
    if (l[kind] !== undefined && (l[`${kind}Read`] !== undefined || l[`${kind}Write`] !== undefined)) {
      out.push(`${kind} (a total) cannot be combined with ${kind}Read/${kind}Write: give either the total or the read and write limits`);
    }
  }
  return out;
}

/** The limits' schema, built on first use (spec/lazy); DiskLimitsSchema below stands in for it. */
export const diskLimitsSchema = once(() => {
  const iops = z.int().min(1).max(MAX).describe('I/O operations per second');
  const bps = z.union([z.int().min(1).max(MAX), z.string().regex(/^[0-9]+(Ki|Mi|Gi|Ti)?$/, { message: 'is not a rate: write bytes per second or a number with Ki, Mi, Gi or Ti (e.g. 10Mi)' })])
    .describe('bytes per second, or a number with Ki, Mi, Gi or Ti (e.g. 10Mi)')
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === null || n < 1 || n > MAX) { ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a rate between 1 and ${MAX} bytes per second` }); return z.NEVER; }
      return n;
    });
  const DiskLimitsSchema = z.strictObject({
    iops: iops.optional(), iopsRead: iops.optional(), iopsWrite: iops.optional(),
    bps: bps.optional(), bpsRead: bps.optional(), bpsWrite: bps.optional(),
  }).superRefine((l, ctx) => {
    for (const message of conflictingLimits(l)) ctx.addIssue({ code: 'custom', message });
    if (Object.values(l).every((v) => v === undefined)) ctx.addIssue({ code: 'custom', message: 'give at least one of iops, iopsRead, iopsWrite, bps, bpsRead, bpsWrite (or leave limits out)' });
  }).describe('I/O limits (a QEMU throttle group of its own); changeable while the VM runs (warden disk limits)');
  return DiskLimitsSchema;
});

export const DiskLimitsSchema = lazySchema(diskLimitsSchema);

export type DiskLimits = z.output<typeof DiskLimitsSchema>;

/** The limits as QEMU's ThrottleLimits (absent fields are 0: no limit, so a live change clears what it does not name). */
export function throttleLimits(l: Partial<Record<LimitField, number | undefined>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, q] of Object.entries(LIMIT_FIELDS)) out[q] = l[k as LimitField] ?? 0;
  return out;
}
