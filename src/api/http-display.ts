/**
 * @module api/http-display: the display WebSocket (GET /v1/vms/NAME/display, upgraded):
 * after the guard and the caller's right to the VM, one socketpair per browser, its other
 * end given to QEMU (vm/display.ts), bytes pumped both ways until either side closes.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { WardenError } from '../errors/index.js';
import { openDisplayClient, pumpDisplay, type DisplayQmp } from '../vm/display.js';
import type { HttpIdentity } from './http-auth.js';
import type { UpgradeRoute } from './http-server.js';

export interface DisplayDeps {
  /** The QMP session of a running VM the caller may use (throws the daemon's 403/404/409 errors otherwise). */
  qmpFor(vm: string, who: HttpIdentity): Promise<DisplayQmp>;
  /** Told of every display session's end (tests and logs). */
  onEnd?: (vm: string, err?: unknown) => void;
}

export const DISPLAY_PATH = /^\/v1\/vms\/([a-z0-9-]{1,63})\/display$/;

/** The upgrade route for http-server. A refusal after the upgrade is a close frame with code 4403/4404/4409 and the error code as reason. */
export function displayRoute(deps: DisplayDeps): UpgradeRoute {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  return {
    match: DISPLAY_PATH,
    handle(req: IncomingMessage, socket: Duplex, head: Buffer, who: HttpIdentity, [vm]: string[]) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        void (async () => {
          try {
            const sock = await openDisplayClient(vm!, await deps.qmpFor(vm!, who));
            await pumpDisplay(sock, ws);
            deps.onEnd?.(vm!);
          } catch (err) {
            const code = err instanceof WardenError ? err.code : 'INTERNAL';
            ws.close(code === 'AUTH_FORBIDDEN' ? 4403 : code === 'VM_NOT_FOUND' ? 4404 : 4409, code);
            deps.onEnd?.(vm!, err);
          }
        })();
      });
    },
  };
}
