/** @module ui/dom: a tiny element builder and the few DOM helpers the pages share (no framework: the pages are small). */

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

/** h('div.card#x', {onclick}, ...children): an element with classes/id from the tag string, attributes, listeners, children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K | `${K}.${string}` | `${K}#${string}`, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const [, name, rest] = /^([a-z0-9]+)(.*)$/.exec(tag) ?? [];
  const el = document.createElement(name as K);
  for (const m of (rest ?? '').matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]!);
    else el.id = m[2]!;
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A definition list from label/value pairs (values may be nodes). */
export function facts(rows: Array<[string, Child]>): HTMLElement {
  return h('dl.facts', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function table(head: string[], rows: Child[][], cls = ''): HTMLTableElement {
  return h('table', { class: cls }, h('thead', {}, h('tr', {}, head.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}
