/** Display hand-off against a real QEMU (-vnc none): a socketpair end via getfd + add_client, pumped over a real WebSocket, spoken to in raw RFB. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { WebSocket, WebSocketServer } from 'ws';
import { QmpClient } from '../qmp/index.js';
import { startQemu } from '../qmp/testing/index.js';
import { openDisplayClient, pumpDisplay } from './display.js';

/** Reads exactly what the RFB steps ask for from a WebSocket's binary messages. */
class ByteReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  constructor(ws: WebSocket) {
    ws.on('message', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.waiter?.(); });
  }
  async read(n: number): Promise<Buffer> {
    const deadline = Date.now() + 20_000;
    while (this.buf.length < n) {
      if (Date.now() > deadline) throw new Error(`RFB: waited for ${n} bytes, have ${this.buf.length}`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 200); });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** RFB 3.8 handshake with security None, then one non-incremental update request; returns the server's size and the update's first rectangle. */
async function rfbHandshake(ws: WebSocket): Promise<{ width: number; height: number; name: string; rects: number }> {
  const r = new ByteReader(ws);
  const version = (await r.read(12)).toString('latin1');
  assert.match(version, /^RFB 003\.00\d\n$/);
  ws.send(Buffer.from('RFB 003.008\n'));
  const n = (await r.read(1))[0]!;
  assert.ok(n > 0, 'the server offers at least one security type');
  const types = [...(await r.read(n))];
  assert.ok(types.includes(1), `security None is offered (got ${types.join(',')})`);
  ws.send(Buffer.from([1]));
  assert.equal((await r.read(4)).readUInt32BE(0), 0, 'security result OK');
  ws.send(Buffer.from([1])); // ClientInit, shared
  const init = await r.read(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  const name = (await r.read(init.readUInt32BE(20))).toString('utf8');
  const req = Buffer.alloc(10);
  req.writeUInt8(3, 0); req.writeUInt8(0, 1); req.writeUInt16BE(0, 2); req.writeUInt16BE(0, 4);
  req.writeUInt16BE(width, 6); req.writeUInt16BE(height, 8);
  ws.send(req);
  const head = await r.read(4);
  assert.equal(head[0], 0, 'a FramebufferUpdate message arrives');
  return { width, height, name, rects: head.readUInt16BE(2) };
}

async function vncClients(qmp: QmpClient): Promise<number> {
  const servers = (await qmp.execute('query-vnc-servers')) as Array<{ clients: unknown[] }>;
  return servers[0]?.clients.length ?? 0;
}

test('a browser-side RFB client reaches QEMU through socketpair + getfd + add_client, and QEMU listens on no port', async (t) => {
  const qemu = await startQemu({ machine: 'pc', extraArgs: ['-vnc', 'none', '-device', 'VGA'] });
  t.after(() => qemu.kill());
  const qmp = await QmpClient.connect({ path: qemu.sockets[0]! });
  t.after(() => qmp.close());
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.after(() => new Promise<void>((r) => wss.close(() => r())));
  const pumped: Promise<void>[] = [];
  wss.on('connection', (peer) => {
    pumped.push(openDisplayClient('test', qmp).then((sock) => pumpDisplay(sock, peer)));
  });
  await new Promise<void>((r) => wss.once('listening', r));
  const port = (wss.address() as { port: number }).port;

  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const got = await rfbHandshake(ws);
  assert.ok(got.width >= 320 && got.height >= 200, `a real framebuffer size (${got.width}x${got.height})`);
  assert.ok(got.rects >= 1, 'the update carries at least one rectangle');

  // QEMU holds the client socket (a socket inode), and no TCP or unix listener of its own.
  const [server] = (await qmp.execute('query-vnc-servers')) as Array<{ clients: unknown[]; server: unknown[] }>;
  assert.equal(server?.clients.length, 1, 'QEMU counts exactly one VNC client');
  assert.deepEqual(server?.server, [], 'QEMU listens on no VNC address');

  ws.close();
  await Promise.all(pumped);
  // Once the browser is gone QEMU drops the client: no fd of ours leaks into it.
  for (let i = 0; i < 50; i++) {
    if (await vncClients(qmp) === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await vncClients(qmp), 0, 'the client is gone from QEMU');
});

test('a VM without a display refuses the hand-off with VM_NO_DISPLAY, and leaves no socket behind', async (t) => {
  const qemu = await startQemu({ machine: 'none' });
  t.after(() => qemu.kill());
  const qmp = await QmpClient.connect({ path: qemu.sockets[0]! });
  t.after(() => qmp.close());
  const before = readdirSync('/proc/self/fd').length;
  await assert.rejects(openDisplayClient('plain', qmp), (e: Error & { code?: string }) => e.code === 'VM_NO_DISPLAY');
  assert.equal(readdirSync('/proc/self/fd').length, before, 'both socketpair ends are closed here');
});
