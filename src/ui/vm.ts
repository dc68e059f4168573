/** @module ui/vm: one VM's page: overview and actions, serial console, display, confinement, plan and logs, one tab each. */
import { allowedActions, type Phase } from '../vm/machine.js';
import { act, inspect, serialLog } from './api.js';
import { ConsoleTab } from './console.js';
import { confinementView } from './confinement.js';
import { DisplayTab } from './display.js';
import { facts, h, mount } from './dom.js';
import { phaseBadge } from './list.js';
import { planView } from './plan.js';
import { specView } from './trace.js';

export const TABS = ['overview', 'console', 'display', 'confinement', 'plan', 'logs'] as const;
export type Tab = typeof TABS[number];

type Obj = Record<string, unknown>;

export class VmPage {
  readonly el: HTMLElement;
  private readonly body = h('div.tab-body');
  private readonly head = h('div.vm-head');
  private live: { close(): void } | undefined;
  private busy: string | undefined;
  private error: string | undefined;

  constructor(readonly name: string, readonly tab: Tab) {
    this.el = h('section.page', {}, this.head,
      h('nav.tabs', {}, TABS.map((t) => h('a', { href: `#/vm/${encodeURIComponent(name)}/${t}`, class: t === tab ? 'active' : '', 'data-tab': t }, t))),
      this.body);
  }

  async load(): Promise<void> {
    const i = await inspect(this.name);
    this.header(i);
    switch (this.tab) {
      case 'overview': return mount(this.body, this.overview(i));
      case 'console': return this.attach(new ConsoleTab(this.name));
      case 'display': return this.attach(new DisplayTab(this.name));
      case 'confinement': return mount(this.body, confinementView(i));
      case 'plan': return mount(this.body, planView(i));
      case 'logs': return mount(this.body, await this.logs());
    }
  }

  /** An event about this VM: the header (phase, actions) is redrawn; live tabs keep their connection. */
  async refresh(): Promise<void> {
    const i = await inspect(this.name);
    this.header(i);
    if (this.tab === 'overview' || this.tab === 'confinement') await this.load();
  }

  private attach(t: { el: HTMLElement; start(): void; close(): void }): void {
    mount(this.body, t.el);
    t.start();
    this.live = t;
  }

  private header(i: Obj): void {
    const phase = String(i['phase']);
    const allowed = new Set<string>(allowedActions(phase as Phase) ?? []);
    mount(this.head, h('h1', {}, h('a', { href: '#/' }, 'VMs'), ' / ', this.name, ' ', phaseBadge(phase), this.busy ? h('span.progress', {}, ` ${this.busy}…`) : null),
      h('div.actions', {}, ['start', 'stop', 'kill', 'pause', 'resume', 'restart'].filter((a) => allowed.has(a)).map((a) =>
        h('button', { 'data-action': a, disabled: this.busy !== undefined, class: a === 'kill' ? 'danger' : '', onclick: () => void this.run(a) }, a))),
      this.error ? h('div.error', {}, this.error) : null);
  }

  private async run(action: string): Promise<void> {
    this.busy = action;
    this.error = undefined;
    await this.refresh().catch(() => undefined);
    try {
      await act(this.name, action);
    } catch (e) {
      this.error = `${action} failed: ${(e as Error).message}`;
    }
    this.busy = undefined;
    await this.refresh().catch(() => undefined);
  }

  private overview(i: Obj): HTMLElement {
    const run = i['run'] as Obj | null;
    const last = i['lastExit'] as Obj | null;
    const warnings = (i['warnings'] as string[] | undefined) ?? [];
    return h('div.overview', {},
      facts([
        ['phase', phaseBadge(String(i['phase']))],
        ['QEMU', run ? `pid ${String((run['qemu'] as Obj)['pid'])} as uid ${String(run['uid'])}:${String(run['gid'])}, accel ${String(run['accel'])}, since ${String(run['startedAt'])}` : 'not running'],
        ['last exit', last ? `${String(last['reason'])} at ${String(last['at'])}: ${String(last['detail'])}` : '–'],
        ['spec file', String(i['specFile'] ?? '(sent through the API)')],
      ]),
      warnings.length > 0 ? h('ul.warnings', {}, warnings.map((w) => h('li', {}, w))) : null,
      h('h2', {}, 'Spec'), specView(i['spec'] ?? {}).el);
  }

  private async logs(): Promise<HTMLElement> {
    const serial = await serialLog(this.name).catch((e: Error) => `(${e.message})`);
    return h('div.logs', {}, h('h2', {}, 'Serial console log'), h('pre.log#serial-log', {}, serial.length > 262144 ? `…${serial.slice(-262144)}` : serial));
  }

  close(): void {
    this.live?.close();
    this.live = undefined;
  }
}
