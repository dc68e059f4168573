/** @module ui/plan: the plan of a VM: QEMU's argv with each option traced to the spec field that caused it, the fds QEMU is given, and the jail. */
import { h, table } from './dom.js';
import { fromChip, specView } from './trace.js';

type Obj = Record<string, unknown>;

/** Groups argv into options (a flag and its value) so each row reads like one QEMU option. */
function options(trace: Array<{ arg: string; from: string }>): Array<{ args: string[]; from: string }> {
  const out: Array<{ args: string[]; from: string }> = [];
  for (const t of trace) {
    const last = out[out.length - 1];
    if (last !== undefined && !t.arg.startsWith('-') && last.args.length === 1 && last.args[0]!.startsWith('-') && last.from === t.from) last.args.push(t.arg);
    else out.push({ args: [t.arg], from: t.from });
  }
  return out;
}

export function planView(i: Obj): HTMLElement {
  const plan = i['plan'] as Obj | null;
  if (plan === null) return h('p.note', {}, 'This VM has not been planned yet: the plan is made when it starts.');
  const spec = specView(i['spec'] ?? {});
  const argv = (plan['argv'] as string[] | undefined) ?? [];
  const trace = (plan['argvTrace'] as Array<{ arg: string; from: string }> | undefined) ?? argv.map((arg) => ({ arg, from: '' }));
  const fds = (plan['fds'] as Obj[] | undefined) ?? [];
  return h('div.plan', {},
    h('div.split', {},
      h('section#argv', {}, h('h2', {}, `QEMU command line (${argv.length} arguments)`),
        table(['option', 'from the spec'], options(trace).map((o) => [h('code', {}, o.args.join(' ')), o.from ? fromChip(o.from, spec) : '']), 'argv')),
      h('section', {}, h('h2', {}, 'Spec'), spec.el)),
    h('section#fds', {}, h('h2', {}, 'File descriptors QEMU is given (it opens nothing by name)'),
      table(['fd', 'kind', 'name', 'path', 'from'], fds.map((f) => [String(f['target'] ?? ''), String(f['kind']), String(f['name'] ?? ''), h('code', {}, String(f['path'] ?? f['device'] ?? '')), fromChip(String(f['from'] ?? ''), spec)]))),
    h('section#jailspec', {}, h('h2', {}, 'JailSpec'), h('pre.json', {}, JSON.stringify(plan['jail'], null, 2))));
}
