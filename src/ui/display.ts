/** @module ui/display: the VM's display in noVNC, over the daemon's display WebSocket (QEMU gets each client as a socketpair end; it listens on no port). */
import RFB from '@novnc/novnc';
import { displayUrl } from './api.js';
import { h, mount } from './dom.js';

export class DisplayTab {
  readonly el: HTMLElement;
  private readonly screen = h('div.screen');
  private readonly status = h('span.status', { 'data-state': 'connecting' }, 'connecting…');
  private rfb: RFB | undefined;
  private poll: number | undefined;

  constructor(private readonly vm: string) {
    this.el = h('div.display', {}, h('div.toolbar', {}, this.status,
      h('button', { onclick: () => this.rfb?.sendCtrlAltDel() }, 'Ctrl-Alt-Del'),
      h('button', { onclick: () => { this.close(); this.start(); } }, 'Reconnect')), this.screen);
  }

  start(): void {
    const rfb = new RFB(this.screen, displayUrl(this.vm), { shared: true });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => { this.set('connected', 'connected'); this.watchPixels(); });
    rfb.addEventListener('disconnect', (e) => this.set('closed', (e as CustomEvent<{ clean: boolean }>).detail.clean ? 'disconnected' : 'connection lost'));
    rfb.addEventListener('securityfailure', () => this.set('closed', 'refused'));
    this.rfb = rfb;
  }

  /** Marks the screen drawn once the canvas has a pixel that is not black: a framebuffer update arrived. */
  private watchPixels(): void {
    this.poll = window.setInterval(() => {
      const c = this.screen.querySelector('canvas');
      const ctx = c?.getContext('2d', { willReadFrequently: true });
      if (!c || !ctx || c.width === 0) return;
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i]! + d[i + 1]! + d[i + 2]! > 0) { this.screen.dataset['drawn'] = `${c.width}x${c.height}`; clearInterval(this.poll); return; }
      }
    }, 250);
  }

  private set(state: string, text: string): void {
    this.status.dataset['state'] = state;
    mount(this.status, text);
  }

  close(): void {
    clearInterval(this.poll);
    this.rfb?.disconnect();
    this.rfb = undefined;
  }
}
