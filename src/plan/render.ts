/** @module plan/render: the plan for people (one QEMU option per line with its spec field) and as one JSON object. */
import type { Plan, PlannedFd } from './types.js';

/** Options that take no value; every other option takes exactly one. */
const FLAGS = new Set(['-no-user-config', '-nodefaults', '-S']);

/** Shell-style quoting, only where needed, so the argv lines can be read (and pasted) as a command. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** [option, value?, from] per line. */
export function argvLines(plan: Plan): Array<{ text: string; from: string }> {
  const t = plan.argvTrace;
  const lines = [{ text: shellQuote(t[0]?.arg ?? ''), from: t[0]?.from ?? '' }];
  for (let i = 1; i < t.length; i++) {
    const opt = t[i]!;
    if (FLAGS.has(opt.arg) || i + 1 >= t.length) { lines.push({ text: opt.arg, from: opt.from }); continue; }
    lines.push({ text: `${opt.arg} ${shellQuote(t[i + 1]!.arg)}`, from: opt.from });
    i++;
  }
  return lines;
}

function describeFd(f: PlannedFd, plan: Plan): string {
  if (f.kind === 'file') return `file ${f.path} ${f.flags.join('|')}${f.fdset === undefined ? '' : ` (fdset ${f.fdset})`}${f.template === undefined ? '' : ` (first made as a copy of ${f.template})`}`;
  if (f.kind === 'sealed-copy') return `sealed memfd copy of ${f.path} (read as /proc/self/fd/${f.target})`;
  if (f.kind === 'log') return `pipe to the log writer, into ${f.path} (rotated at ${f.capBytes} bytes)${f.fdset === undefined ? '' : ` (fdset ${f.fdset})`}`;
  if (f.kind === 'unix-listen') return `listening unix socket ${f.path}`;
  if (f.kind === 'socketpair' && f.helperListens === true) return `listening unix socket, no path (QEMU's end of ${f.pair} already connected to it)`;
  if (f.kind === 'socketpair') return `socketpair ${f.pair} (the other end is a helper's)`;
  if (f.kind === 'state-dir') return `directory ${f.path} (made by the manager, owned by the helper's uid while it runs)`;
  const a = plan.hostActions[f.action];
  return `from host action ${f.action} (${a?.kind ?? '?'} ${a !== undefined && 'ifname' in a ? a.ifname : a?.nic ?? ''})`;
}

/** The human view of `warden plan`. */
export function renderPlan(plan: Plan): string {
  const out: string[] = ['QEMU command (one option per line, with the spec field it comes from):'];
  const lines = argvLines(plan);
  const width = Math.min(100, Math.max(...lines.map((l) => l.text.length)));
  lines.forEach((l, i) => out.push(`  ${l.text.padEnd(width)}${i < lines.length - 1 ? ' \\' : '  '}  # ${l.from}`));
  out.push('', 'File descriptors (opened by the manager, passed to QEMU):');
  for (const f of plan.fds) out.push(`  fd ${f.target} ${f.name}: ${describeFd(f, plan)}  # ${f.from}`);
  const j = plan.jail;
  out.push('', 'Jail:');
  out.push(`  identity: ${'uid' in j.identity ? `uid ${j.identity.uid}, gid ${j.identity.gid}` : 'a uid leased at launch'}; network: ${j.network.mode}; devices: ${j.devices.length === 0 ? 'none' : j.devices.join(', ')}`);
  for (const m of j.mounts) out.push(`  mount ${m.type} ${'source' in m ? `${m.source} -> ${m.target}` : 'linkTarget' in m ? `${m.path} -> ${m.linkTarget}` : m.target}`);
  if (j.cgroup !== undefined) out.push(`  cgroup ${JSON.stringify(j.cgroup)}`);
  if (j.rlimits !== undefined) out.push(`  rlimits ${JSON.stringify(j.rlimits)}`);
  if (j.landlock !== undefined) out.push(`  landlock read-only: ${j.landlock.readOnly.join(' ')}; read-write: ${j.landlock.readWrite.length === 0 ? 'nothing' : j.landlock.readWrite.join(' ')}`);
  for (const h of plan.helpers) {
    out.push('', `Helper ${h.kind} for ${h.from} (jail ${h.jail.name}):`);
    out.push(`  ${h.jail.argv.map(shellQuote).join(' ')}`);
    for (const f of h.fds) out.push(`  fd ${f.target} ${f.name}: ${describeFd(f, plan).replace("a helper's", "QEMU's")}`);
    out.push(`  network: ${h.jail.network.mode}; cgroup ${JSON.stringify(h.jail.cgroup)}; ${h.jail.mounts.length} mounts`);
    for (const m of h.jail.mounts) if ((m.type === 'bind' || m.type === 'ro-bind') && m.idmap !== undefined) out.push(`  mount ${m.type} ${m.source} -> ${m.target}, idmapped: uid ${m.idmap.uid}/gid ${m.idmap.gid} appear as the jail's`);
  }
  out.push('', 'Host actions:');
  if (plan.hostActions.length === 0) out.push('  none');
  plan.hostActions.forEach((a, i) => out.push(`  ${i}: ${JSON.stringify(a)}`));
  out.push('', 'Resources:');
  for (const m of plan.manifest) out.push(`  ${m.kind.padEnd(11)} ${m.access.padEnd(17)} ${m.resource}  # ${m.from}${m.note === undefined ? '' : ` (${m.note})`}`);
  return out.join('\n');
}

export function planToJson(plan: Plan): Record<string, unknown> {
  return { argv: plan.argv, argvTrace: plan.argvTrace, fds: plan.fds, jail: plan.jail, hostActions: plan.hostActions, manifest: plan.manifest, helpers: plan.helpers };
}
