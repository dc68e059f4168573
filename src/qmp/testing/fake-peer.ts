/** @module qmp/testing/fake-peer: a scripted QMP server on a unix socket, only for fault injection (garbage, hang-ups, silence). */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

/** One accepted connection, seen from the server side. */
export class FakeConnection {
  constructor(readonly socket: net.Socket) {}

  send(message: unknown): void {
    this.sendRaw(`${JSON.stringify(message)}\r\n`);
  }

  sendRaw(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  reply(cmd: FakeCommand, value: unknown = {}): void {
    this.send({ return: value, id: cmd.id });
  }

  /** Closes the connection abruptly (RST-like for a unix socket: no more reads or writes). */
  hangUp(): void {
    this.socket.destroy();
  }
}

export type FakeScript = (cmd: FakeCommand, conn: FakeConnection) => void;

export interface FakePeerOptions {
  /** The greeting's capabilities (default []). */
  capabilities?: string[];
  /** Answer qmp_capabilities by itself (default true). */
  autoNegotiate?: boolean;
  /** Send a greeting at all (default true). */
  greet?: boolean;
}

/** A QMP "server" whose every answer is scripted by the test. */
export class FakeQmpPeer {
  readonly connections: FakeConnection[] = [];
  /** Every command received, in order. */
  readonly received: FakeCommand[] = [];
  script: FakeScript = () => {};

  private constructor(readonly dir: string, readonly path: string, private readonly server: net.Server) {}

  static async start(options: FakePeerOptions = {}): Promise<FakeQmpPeer> {
    const dir = mkdtempSync(join(tmpdir(), 'warden-qmp-'));
    const path = join(dir, 'fake.sock');
    const server = net.createServer();
    const peer = new FakeQmpPeer(dir, path, server);
    server.on('connection', (socket) => peer.accept(socket, options));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
    return peer;
  }

  private accept(socket: net.Socket, options: FakePeerOptions): void {
    const conn = new FakeConnection(socket);
    this.connections.push(conn);
    socket.on('error', () => {});
    if (options.greet !== false) {
      conn.send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'fake' }, capabilities: options.capabilities ?? [] } });
    }
    let buf = '';
    socket.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as FakeCommand;
        buf = buf.slice(nl + 1);
        this.received.push(cmd);
        if (cmd.execute === 'qmp_capabilities' && options.autoNegotiate !== false) conn.reply(cmd);
        else this.script(cmd, conn);
      }
    });
  }

  /** Stops listening, drops every connection and removes the temp dir. */
  async close(): Promise<void> {
    for (const c of this.connections) c.hangUp();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
