/**
 * @module ui/console: the serial console in xterm.js over the daemon's console WebSocket:
 * the backlog arrives first, then live bytes; one interactive client at a time, and a
 * take-over button when another holds it.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { consoleUrl } from './api.js';
import { h, mount } from './dom.js';

export class ConsoleTab {
  readonly el: HTMLElement;
  private readonly term = new Terminal({ convertEol: false, scrollback: 5000, fontSize: 14, cursorBlink: true });
  private readonly fit = new FitAddon();
  private readonly status = h('span.status', { 'data-state': 'connecting' }, 'connecting…');
  private readonly takeOver = h('button', { hidden: true, onclick: () => this.connect(true) }, 'Take over');
  private ws: WebSocket | undefined;
  private readonly box = h('div.term');

  constructor(private readonly vm: string) {
    this.el = h('div.console', {}, h('div.toolbar', {}, this.status, this.takeOver), this.box);
    this.term.loadAddon(this.fit);
    this.term.onData((d) => { if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(new TextEncoder().encode(d)); });
  }

  /** Opens the terminal in the page (after the element is attached) and connects. */
  start(): void {
    this.term.open(this.box);
    this.fit.fit();
    (this.box as HTMLElement & { terminal?: Terminal }).terminal = this.term;
    this.connect(false);
  }

  private connect(force: boolean): void {
    this.ws?.close();
    const ws = new WebSocket(consoleUrl(this.vm, force));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.setState('connecting', 'connecting…');
    ws.onopen = () => { this.setState('live', 'connected: typing goes to the guest'); this.takeOver.hidden = true; this.term.focus(); };
    ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
      if (typeof m.data !== 'string') { this.term.write(new Uint8Array(m.data)); return; }
      this.control(JSON.parse(m.data) as { type?: string; message?: string });
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (this.box.dataset['state'] !== 'busy') this.setState('closed', `disconnected${ev.reason ? `: ${ev.reason}` : ''}`);
      this.takeOver.hidden = false;
    };
  }

  /** Text frames are control messages: another client holds the console, or took it from us. */
  private control(c: { type?: string; message?: string }): void {
    if (c.type === 'busy' || c.type === 'taken' || c.type === 'read-only') {
      this.setState('busy', c.message ?? (c.type === 'taken' ? 'another client took over the console' : 'another client holds the console (read-only here)'));
      this.takeOver.hidden = false;
    }
  }

  private setState(state: string, text: string): void {
    this.box.dataset['state'] = state;
    this.status.dataset['state'] = state;
    mount(this.status, text);
  }

  close(): void {
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
    this.term.dispose();
  }
}
