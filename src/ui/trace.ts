/** @module ui/trace: the VM's spec as YAML with line numbers, and the line a plan's `from` (a spec path) points at, so argv and manifest rows link to the field that caused them. */
import { LineCounter, parseDocument, stringify } from 'yaml';
import { locate, parsePath } from '../spec/locate.js';
import { h } from './dom.js';

export interface SpecView {
  el: HTMLElement;
  /** The 1-based line of a spec path in the shown YAML, or null for "(base)" and paths the spec does not spell out. */
  lineOf(from: string): number | null;
  /** Highlights the lines of a path and scrolls to the first. */
  show(from: string): void;
}

export function specView(spec: unknown): SpecView {
  const text = stringify(spec, { lineWidth: 0 });
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const lines = text.replace(/\n$/, '').split('\n').map((l, i) => h('div.line', { 'data-line': i + 1 }, h('span.no', {}, String(i + 1)), h('span.src', {}, l || ' ')));
  const el = h('pre.spec', {}, lines);
  const lineOf = (from: string): number | null => {
    if (from === '' || from.startsWith('(')) return null;
    const path = parsePath(from);
    if (path.length === 0 || !(typeof path[0] === 'string' && path[0] in (spec as Record<string, unknown>))) return null;
    return locate(doc, lc, path, true).line;
  };
  return {
    el, lineOf,
    show(from) {
      for (const l of lines) l.classList.remove('hit');
      const n = lineOf(from);
      if (n === null) return;
      lines[n - 1]?.classList.add('hit');
      lines[n - 1]?.scrollIntoView({ block: 'nearest' });
    },
  };
}

/** A link-like chip for a `from` value: hovering or clicking highlights its spec line. */
export function fromChip(from: string, view: SpecView): HTMLElement {
  const line = view.lineOf(from);
  return h('button.from', { title: line === null ? 'planned for every VM' : `spec line ${line}`, 'data-from': from, onclick: () => view.show(from), onmouseenter: () => view.show(from) },
    from, line === null ? null : h('small', {}, ` :${line}`));
}
