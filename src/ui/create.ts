/**
 * @module ui/create: a spec editor that validates as you type (the same parser the daemon
 * runs, bundled) and shows every problem at its line, then creates the VM; the daemon's own
 * refusal (paths, images) is shown at its lines the same way.
 */
import type { SpecError } from '../spec/errors.js';
import { ApiError, createVm, type SpecIssue } from './api.js';
import { h, mount } from './dom.js';

const TEMPLATE = `apiVersion: warden/v1
name: demo
cpus: 1
memory: 256Mi
accel: auto
vnc: true
boot:
  kernel: /path/to/vmlinuz
  initrd: /path/to/initramfs.gz
  cmdline: console=ttyS0
disks: []
networks: []
`;

export class CreatePage {
  readonly el: HTMLElement;
  private readonly text = h('textarea.editor', { spellcheck: 'false', wrap: 'off', 'aria-label': 'VM spec (YAML or JSON)' });
  private readonly gutter = h('pre.gutter', { 'aria-hidden': 'true' });
  private readonly issuesEl = h('ul.issues');
  private readonly status = h('div.status');
  private timer: number | undefined;

  constructor(private readonly onCreated: (name: string) => void) {
    this.text.value = TEMPLATE;
    this.text.addEventListener('input', () => { clearTimeout(this.timer); this.timer = window.setTimeout(() => void this.check(), 250); });
    this.text.addEventListener('scroll', () => { this.gutter.scrollTop = this.text.scrollTop; });
    this.el = h('section.page', {},
      h('div.toolbar', {}, h('h1', {}, 'Create a VM'), h('button#create.primary', { onclick: () => void this.create() }, 'Create')),
      h('p.hint', {}, 'Paste or edit a spec (YAML or JSON). Paths must be absolute: the daemon has no directory to resolve them against.'),
      h('div.editor-wrap', {}, this.gutter, this.text), this.status, this.issuesEl);
    void this.check();
  }

  /** Validates in the page (the parser, zod included, is a chunk of its own, loaded here only); returns whether the spec is valid. */
  async check(): Promise<boolean> {
    const { parseSpec } = await import('../spec/parse.js');
    try {
      parseSpec(this.text.value, 'spec.yaml');
      this.show([], 'valid: no problems found here (the daemon also checks paths and images)');
      return true;
    } catch (e) {
      const issues = (e as Partial<SpecError>).issues;
      if (issues !== undefined) { this.show(issues, `${issues.length} problem${issues.length === 1 ? '' : 's'}`); return false; }
      this.show([], `could not check: ${(e as Error).message}`);
      return false;
    }
  }

  private async create(): Promise<void> {
    if (!(await this.check())) return;
    mount(this.status, 'creating…');
    try {
      const r = await createVm(this.text.value);
      this.onCreated(String((r['vm'] as { name?: string } | undefined)?.name ?? r['name']));
    } catch (e) {
      const issues = e instanceof ApiError ? ((e.details['issues'] as SpecIssue[] | undefined) ?? (e.details['context'] as { issues?: SpecIssue[] } | undefined)?.issues ?? []) : [];
      this.show(issues, e instanceof ApiError ? `${e.code}: ${e.message.split('\n')[0]}` : String(e));
    }
  }

  /** Marks each issue's line in the gutter and lists them; clicking one puts the cursor there. */
  private show(issues: readonly SpecIssue[], summary: string): void {
    const byLine = new Map<number, SpecIssue[]>();
    for (const i of issues) byLine.set(i.line, [...(byLine.get(i.line) ?? []), i]);
    const lines = this.text.value.split('\n').length;
    mount(this.gutter, Array.from({ length: lines }, (_, k) => {
      const at = byLine.get(k + 1);
      return h('span', { class: at ? 'bad' : '', title: at?.map((i) => i.message).join('\n'), 'data-line': k + 1 }, String(k + 1));
    }));
    mount(this.status, h('span', { class: issues.length > 0 ? 'error' : 'ok' }, summary));
    mount(this.issuesEl, issues.map((i) => h('li', { 'data-line': i.line, onclick: () => this.goTo(i.line, i.col) },
      h('code', {}, `line ${i.line}:${i.col}`), ' ', i.path ? h('b', {}, i.path) : null, ` ${i.message}`, i.suggestion ? h('em', {}, ` (${i.suggestion})`) : null)));
  }

  private goTo(line: number, col: number): void {
    const before = this.text.value.split('\n').slice(0, line - 1).join('\n');
    const pos = (line > 1 ? before.length + 1 : 0) + Math.max(0, col - 1);
    this.text.focus();
    this.text.setSelectionRange(pos, pos);
  }
}
