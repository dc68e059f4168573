/** @module ui/list: the VM list: phases and last exit reasons, live from the event stream, with lifecycle actions and their progress. */
import { allowedActions, type Phase } from '../vm/machine.js';
import { act, getVm, listVms, toRow, type VmRow } from './api.js';
import { h, mount } from './dom.js';

const ACTIONS = ['start', 'stop', 'kill', 'pause', 'resume', 'delete'] as const;
const VERB: Record<string, string> = { start: 'starting', stop: 'stopping', kill: 'killing', pause: 'pausing', resume: 'resuming', delete: 'deleting' };

export function phaseBadge(phase: string): HTMLElement {
  return h('span.phase', { 'data-phase': phase }, phase);
}

export class VmList {
  private rows = new Map<string, VmRow>();
  /** VM name → the action in progress from this page, and the last error an action gave. */
  private busy = new Map<string, string>();
  private errors = new Map<string, string>();
  private readonly body = h('tbody');
  readonly el: HTMLElement;

  constructor() {
    this.el = h('section.page', {},
      h('div.toolbar', {}, h('h1', {}, 'Virtual machines'), h('a.button', { href: '#/create' }, 'Create VM')),
      h('table.vms', {}, h('thead', {}, h('tr', {}, ['Name', 'Phase', 'PID', 'UID', 'Last exit', 'Actions'].map((x) => h('th', {}, x)))), this.body));
  }

  async load(): Promise<void> {
    this.rows = new Map((await listVms()).map((r) => [r.name, r]));
    this.render();
  }

  /** An event named a VM: fetch its row again (gone: drop it). */
  async refresh(name: string): Promise<void> {
    try {
      this.rows.set(name, toRow(await getVm(name)));
    } catch {
      this.rows.delete(name);
    }
    this.render();
  }

  private render(): void {
    const names = [...this.rows.keys()].sort();
    mount(this.body, names.length === 0 ? h('tr', {}, h('td.empty', { colspan: 6 }, 'No VMs yet.')) : names.map((n) => this.row(this.rows.get(n)!)));
  }

  private row(r: VmRow): HTMLElement {
    const doing = this.busy.get(r.name);
    const allowed = new Set<string>(allowedActions(r.phase as Phase) ?? []);
    const err = this.errors.get(r.name);
    return h('tr', { 'data-vm': r.name, 'data-phase': r.phase },
      h('td', {}, h('a', { href: `#/vm/${encodeURIComponent(r.name)}/overview` }, r.name)),
      h('td', {}, phaseBadge(r.phase), doing ? h('span.progress', {}, ` ${VERB[doing] ?? doing}…`) : null),
      h('td', {}, r.pid ?? '–'), h('td', {}, r.uid ?? '–'),
      h('td.exit', {}, r.lastExit ?? '–', err ? h('div.error', {}, err) : null),
      h('td.actions', {}, ACTIONS.filter((a) => allowed.has(a)).map((a) => h('button', {
        'data-action': a, disabled: doing !== undefined, class: a === 'kill' || a === 'delete' ? 'danger' : '',
        onclick: () => void this.run(r.name, a),
      }, a))));
  }

  async run(name: string, action: string): Promise<void> {
    if (action === 'delete' && !confirm(`Delete VM ${name}?`)) return;
    this.busy.set(name, action);
    this.errors.delete(name);
    this.render();
    try {
      await act(name, action);
    } catch (e) {
      this.errors.set(name, `${action} failed: ${(e as Error).message}`);
    } finally {
      this.busy.delete(name);
      await this.refresh(name);
    }
  }
}
