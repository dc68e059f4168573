/**
 * @module ui/console: the serial console in xterm.js over the daemon's console WebSocket:
 * the backlog arrives first, then live bytes; one interactive client at a time, and a
 * take-over button when another holds it.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { ApiError, consoleUrl } from './api.js';
import { h, mount } from './dom.js';

export class ConsoleTab {
  readonly el: HTMLElement;
  private readonly term = new Terminal({ convertEol: false, scrollback: 5000, fontSize: 14, cursorBlink: true });
  private readonly fit = new FitAddon();
  private readonly status = h('span.status', { 'data-state': 'connecting' }, 'connecting…');
  private readonly takeOver = h('button', { hidden: true, onclick: () => void this.connect(true) }, 'Take over');
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
    void this.connect(false);
  }

  /**
   * One interactive client per VM: a refused upgrade (the browser sees only a close before
   * open) means another client holds the console, and Take over asks with force; a close
   * with 4000 means another client took it from us.
   */
  private async connect(force: boolean): Promise<void> {
    const old = this.ws;
    this.ws = undefined;
    old?.close();
    this.setState('connecting', 'connecting…');
    let url: string;
    try {
      url = await consoleUrl(this.vm, force);
    } catch (e) {
      this.setState('closed', e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
      this.takeOver.hidden = false;
      return;
    }
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.setState('live', 'connected: typing goes to the guest'); this.takeOver.hidden = true; this.term.focus(); };
    ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
      this.term.write(typeof m.data === 'string' ? m.data : new Uint8Array(m.data));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (!opened) this.setState('busy', 'the console is attached elsewhere (or the VM is not running): Take over to use it here');
      else if (ev.code === 4000) this.setState('busy', 'another client took the console over');
      else this.setState('closed', `disconnected${ev.reason ? `: ${ev.reason}` : ''}`);
      this.takeOver.hidden = false;
    };
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
