/** @module ui/main: the web console's entry: who is logged in, the hash router (#/, #/create, #/vm/NAME/TAB), and the one event stream that keeps the pages live. */
import '@xterm/xterm/css/xterm.css';
import './app.css';
import { ApiError, events, whoami } from './api.js';
import { CreatePage } from './create.js';
import { h, mount } from './dom.js';
import { VmList } from './list.js';
import { TABS, VmPage, type Tab } from './vm.js';

const main = h('main');
let page: { el: HTMLElement; close?(): void; refresh?(name: string): Promise<void> } | undefined;
let list: VmList | undefined;
let vmPage: VmPage | undefined;

async function route(): Promise<void> {
  page?.close?.();
  list = undefined;
  vmPage = undefined;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (parts[0] === 'create') {
      page = new CreatePage((name) => { location.hash = `#/vm/${encodeURIComponent(name)}/overview`; });
      mount(main, page.el);
    } else if (parts[0] === 'vm' && parts[1]) {
      const tab = (TABS as readonly string[]).includes(parts[2] ?? '') ? parts[2] as Tab : 'overview';
      vmPage = new VmPage(parts[1], tab);
      page = vmPage;
      mount(main, vmPage.el);
      await vmPage.load();
    } else {
      list = new VmList();
      page = list;
      mount(main, list.el);
      await list.load();
    }
  } catch (e) {
    mount(main, h('div.error.page', {}, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)));
  }
}

async function boot(): Promise<void> {
  const header = h('header', {}, h('a.brand', { href: '#/' }, 'qemu-warden'), h('nav', {}, h('a', { href: '#/' }, 'VMs'), h('a', { href: '#/create' }, 'Create')), h('span.who'));
  document.body.replaceChildren(header, main);
  try {
    const who = await whoami();
    mount(header.querySelector('.who')!, `uid ${who.uid} (${who.role}) · warden ${who.version}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      mount(main, h('div.page.login', {}, h('h1', {}, 'Not logged in'), h('p', {}, 'Run ', h('code', {}, 'warden ui --url'), ' on the host and open the URL it prints (it works once, for a minute).')));
      return;
    }
    throw e;
  }
  const es = events((ev) => {
    if (ev.type === 'resync') { void route(); return; }
    const vm = typeof ev.vm === 'string' ? ev.vm : undefined;
    if (vm === undefined) return;
    void list?.refresh(vm);
    if (vmPage?.name === vm) void vmPage.refresh();
  });
  es.addEventListener('open', () => document.body.dataset['events'] = 'open');
  window.addEventListener('hashchange', () => void route());
  await route();
}

void boot();
