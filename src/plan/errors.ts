/** @module plan/errors: PlanError, thrown once with every issue the planner found (codes PLAN_*). */
import { WardenError } from '../errors/index.js';

export interface PlanIssue {
  /** PLAN_MISSING_FACT, PLAN_FORMAT_MISMATCH, PLAN_ENCRYPTED, PLAN_UNSUPPORTED, PLAN_QAPI, PLAN_PCI_EXHAUSTED, PLAN_KVM_UNUSABLE ... */
  code: string;
  /** The spec path the issue belongs to. */
  from: string;
  message: string;
  suggestion?: string;
}

export class PlanError extends WardenError {
  readonly issues: PlanIssue[];

  constructor(spec: string, issues: PlanIssue[]) {
    const head = issues.length === 1
      ? `planning VM ${spec} failed`
      : `planning VM ${spec} failed with ${issues.length} problems`;
    const lines = issues.map((i) => `  ${i.from}: ${i.message}`);
    super(issues[0]?.code ?? 'PLAN_INVALID', [head, ...lines].join('\n'), {
      context: { vm: spec, issues },
      suggestions: issues.flatMap((i) => (i.suggestion === undefined ? [] : [i.suggestion])),
    });
    this.issues = issues;
  }
}
