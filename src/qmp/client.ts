/** @module qmp/client: the QMP client: greeting, capability negotiation, id-correlated commands, timeouts, events, disconnects. */
import type net from 'node:net';
import { QmpError } from './errors.js';
import { EventSubscription, DEFAULT_EVENT_BUFFER } from './events.js';
import type { RawQmpEvent } from './events.js';
import { DEFAULT_MAX_LINE_BYTES, LineDecoder } from './framing.js';
import { PendingCalls } from './pending.js';
import { classify, parseObject } from './protocol.js';
import type { QmpGreeting, QmpMessage } from './protocol.js';
import { openSocket, Writer } from './transport.js';
import type { QmpTarget } from './transport.js';
import type { ExecuteOptions, ExecuteRest, QmpCommandName, QmpEvent, QmpEventName, QmpReturn } from './types.js';

export interface ConnectOptions {
  /** Budget for connecting, the greeting and negotiation (ms, default 10000). */
  timeoutMs?: number;
  /** Default per-command timeout (ms, default 30000; 0 = none). */
  commandTimeoutMs?: number;
  /** Longest line accepted from QEMU (bytes, default 16 MiB); longer fails the connection. */
  maxLineBytes?: number;
  /** Negotiate the oob capability when QEMU offers it (default true). */
  oob?: boolean;
  /** Told about replies that were dropped: late ones (after a timeout) and ones with unknown ids. Exceptions it throws are ignored. */
  onWarning?: (warning: QmpWarning) => void;
}

export interface QmpWarning {
  kind: 'late-reply' | 'unknown-id';
  id: unknown;
  message: string;
}

/** A connection to one QEMU monitor. Create with `QmpClient.connect()`. */
export class QmpClient {
  /** QEMU's greeting (version, offered capabilities). */
  greeting!: QmpGreeting;
  /** Capabilities enabled by negotiation (['oob'] or []). */
  capabilities: string[] = [];
  /** Resolves once the socket is closed, with the reason (undefined after close()). */
  readonly closed: Promise<QmpError | undefined>;

  private state: 'greeting' | 'negotiating' | 'open' | 'closed' = 'greeting';
  private reason: QmpError | undefined;
  private closedByClient = false;
  private readonly pending = new PendingCalls();
  private readonly subs = new Set<EventSubscription<{ event: string }>>();
  private readonly heads = new Map<string, string>();
  private readonly decoder: LineDecoder;
  private readonly writer: Writer;
  private greeted: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined;
  private resolveClosed!: (reason: QmpError | undefined) => void;

  private constructor(private readonly socket: net.Socket, private readonly options: ConnectOptions) {
    this.decoder = new LineDecoder(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.writer = new Writer(socket);
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // ECONNRESET / EPIPE when QEMU exits: a disconnect, never an unhandled error.
    socket.on('error', (cause) => this.fail(this.disconnected('the QMP connection failed', cause)));
    socket.on('end', () => this.fail(this.disconnected('QEMU closed the QMP connection')));
    socket.on('close', () => {
      this.fail(this.disconnected('the QMP socket closed'));
      this.resolveClosed(this.closedByClient ? undefined : this.reason);
    });
  }

  /** Connects, reads the greeting and negotiates capabilities (oob where offered). */
  static async connect(target: QmpTarget, options: ConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const client = new QmpClient(await openSocket(target), options);
    const where = 'path' in target ? target.path : 'fd' in target ? `fd ${target.fd}` : 'a given socket';
    const timer = setTimeout(() => client.fail(new QmpError('QMP_CONNECT', `connecting to QMP at ${where} failed: no greeting and negotiation within ${timeoutMs} ms`, {
      context: { target: where, timeoutMs, state: client.state },
      suggestions: ['QEMU greets one client at a time: check that no other client holds this monitor'],
    })), timeoutMs);
    try {
      client.greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        client.greeted = { resolve, reject };
        if (client.reason) reject(client.reason);
      });
      client.state = 'negotiating';
      const enable = options.oob !== false && client.greeting.capabilities.includes('oob') ? ['oob'] : [];
      await client.send('qmp_capabilities', enable.length > 0 ? { enable } : undefined, { timeoutMs: 0 });
      client.capabilities = enable;
      client.state = 'open';
      return client;
    } catch (err) {
      const error = err instanceof QmpError && err.code === 'QMP_CONNECT' ? err : new QmpError('QMP_CONNECT', `connecting to QMP at ${where} failed`, {
        context: { target: where }, cause: err,
      });
      client.fail(error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs a command; resolves with its typed `return` value, rejects with a QmpError. */
  execute<K extends QmpCommandName>(name: K, ...rest: ExecuteRest<K>): Promise<QmpReturn<K>>;
  // The implementation takes plain parameters: no rest array per command.
  execute(name: string, args?: Record<string, unknown>, options?: ExecuteOptions): Promise<unknown> {
    return this.send(name, args, options);
  }

  /** Untyped escape hatch for commands the generated schema does not know (other QEMU versions). */
  executeUntyped(name: string, args?: Record<string, unknown>, options?: ExecuteOptions): Promise<unknown> {
    return this.send(name, args, options);
  }

  /**
   * Subscribes to events by name, or 'all'. Subscribe before issuing the command that
   * causes the event: QEMU may send the event before the command's reply.
   */
  events(names?: 'all', options?: { bufferSize?: number }): EventSubscription<QmpEvent>;
  events<K extends QmpEventName>(names: readonly K[], options?: { bufferSize?: number }): EventSubscription<QmpEvent<K>>;
  events(names: readonly string[] | 'all' = 'all', options: { bufferSize?: number } = {}): EventSubscription<QmpEvent> {
    const set = names === 'all' ? 'all' : new Set(names);
    const sub = new EventSubscription<{ event: string }>(set, options.bufferSize ?? DEFAULT_EVENT_BUFFER, (s) => this.subs.delete(s));
    this.subs.add(sub);
    if (this.state === 'closed') sub.end(this.reason ?? this.disconnected('the QMP connection is closed'));
    // The names chosen above are what makes the narrower type true.
    return sub as unknown as EventSubscription<QmpEvent>;
  }

  /** Closes the connection; pending commands fail with QMP_DISCONNECTED. Resolves once closed. */
  async close(): Promise<void> {
    if (this.state !== 'closed') this.closedByClient = true;
    this.fail(new QmpError('QMP_DISCONNECTED', 'the QMP connection was closed by the client'));
    await this.closed;
  }

  /** Commands sent and not yet answered, failed or timed out. */
  get pendingCount(): number {
    return this.pending.size;
  }

  private get ended(): boolean {
    return this.state === 'closed';
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  private send(name: string, args: Record<string, unknown> | undefined, options: ExecuteOptions | undefined): Promise<unknown> {
    if (this.state !== 'open' && (this.state === 'closed' || name !== 'qmp_capabilities')) {
      return Promise.reject(new QmpError('QMP_DISCONNECTED', `running ${name} failed: the QMP connection is closed`, {
        command: name, cause: this.reason, suggestions: ['connect again; re-query state, since pending commands may or may not have run'],
      }));
    }
    // qmp_capabilities gets an id never used again (-1): QEMU sends the reply of a command a
    // client left running (block_resize, screendump) to the next client, ahead of its answer to
    // qmp_capabilities, and with small reused ids that stale reply would match a command here.
    const id = name === 'qmp_capabilities' ? -1 : this.pending.nextId();
    // Spelled out rather than JSON.stringify of a fresh object: this runs once per command. And
    // the shortest line: QEMU reads a monitor one byte per read, so every byte adds to the round trip.
    const data = `${options?.oob === true ? `{"exec-oob":${JSON.stringify(name)}` : this.head(name)}${args === undefined ? '' : `,"arguments":${JSON.stringify(args)}`},"id":${id}}\n`;
    const reply = this.pending.add(id, name, options?.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000);
    const fds = options?.fds;
    if ((fds === undefined || fds.length === 0) && this.writer.idle) this.writer.write(data);
    else this.writer.send(data, fds, () => this.pending.has(id))?.catch((err: Error) => this.pending.reject(id, err));
    return reply;
  }

  /** `{"execute":"NAME"`, made once per command name (a connection uses a handful). */
  private head(name: string): string {
    let h = this.heads.get(name);
    if (h === undefined) this.heads.set(name, (h = `{"execute":${JSON.stringify(name)}`));
    return h;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      for (const line of this.decoder.push(chunk)) {
        const msg = parseObject(line);
        // A reply, once open: routed without building a QmpMessage (what classify() would make of it).
        if (this.state === 'open' && 'return' in msg) this.route(msg['id'], undefined, msg['return']);
        else this.onMessage(classify(msg, line));
        if (this.ended) return;
      }
    } catch (err) {
      this.fail(err instanceof QmpError ? err : new QmpError('QMP_PROTOCOL', 'handling a QMP message failed', { cause: err }));
    }
  }

  private onMessage(msg: QmpMessage): void {
    if (this.state === 'greeting') {
      if (msg.kind !== 'greeting') throw new QmpError('QMP_PROTOCOL', `reading the QMP greeting failed: got a ${msg.kind} message first`);
      this.greeted?.resolve(msg.greeting);
      this.greeted = undefined;
      return;
    }
    switch (msg.kind) {
      case 'event': {
        const event: RawQmpEvent = { event: msg.event, data: msg.data, timestamp: msg.timestamp };
        for (const sub of this.subs) sub.deliver(event);
        return;
      }
      case 'return':
        return this.route(msg.id, undefined, msg.value);
      case 'error':
        return this.route(msg.id, msg);
      case 'greeting':
        throw new QmpError('QMP_PROTOCOL', 'reading a QMP message failed: a second greeting arrived');
    }
  }

  private route(id: unknown, error: Extract<QmpMessage, { kind: 'error' }> | undefined, value?: unknown): void {
    const call = this.pending.answer(id);
    if (call !== undefined) {
      if (error === undefined) return call.resolve(value);
      const command = call.command;
      return call.reject(new QmpError('QMP_COMMAND_FAILED', `running ${command} failed: ${error.errorClass}: ${error.desc}`, {
        command, errorClass: error.errorClass, desc: error.desc, context: { id },
      }));
    }
    if (error !== undefined && id === undefined) {
      // QEMU could not even read an id: the byte stream is out of step, nothing can be trusted.
      throw new QmpError('QMP_PROTOCOL', `reading a QMP message failed: QEMU reported an error for no command (${error.errorClass})`, {
        errorClass: error.errorClass, desc: error.desc,
      });
    }
    const late = this.pending.forgetLate(id);
    const warning: QmpWarning = {
      kind: late ? 'late-reply' : 'unknown-id', id,
      message: late ? `dropped the late reply to timed-out id ${String(id)}` : `dropped a reply with unknown id ${JSON.stringify(id)}`,
    };
    try {
      this.options.onWarning?.(warning);
    } catch {
      // A throwing warning hook must not take the connection down (documented on onWarning).
    }
  }

  private disconnected(message: string, cause?: unknown): QmpError {
    const partial = this.decoder.pendingBytes;
    return new QmpError('QMP_DISCONNECTED', message, {
      context: partial > 0 ? { partialLineBytes: partial } : {},
      cause,
      suggestions: ['QEMU may have exited: check its exit status and stderr'],
    });
  }

  /** Ends the connection once: every pending call and subscription fails with `reason`. */
  private fail(reason: QmpError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.reason = reason;
    this.greeted?.reject(reason);
    this.greeted = undefined;
    const why = reason.code === 'QMP_DISCONNECTED' ? 'the QMP connection ended before its reply'
      : reason.code === 'QMP_PROTOCOL' ? 'the QMP connection was dropped after a protocol error' : 'the QMP connection could not be set up';
    this.pending.rejectAll((command, id) => new QmpError(reason.code, `running ${command} failed: ${why}`, { command, context: { id }, cause: reason }));
    this.pending.dispose();
    const subEnd = reason.code === 'QMP_DISCONNECTED' ? reason : this.disconnected(`waiting for QMP events failed: ${why}`, reason);
    for (const sub of [...this.subs]) sub.end(subEnd);
    this.writer.abort(reason);
    this.socket.destroy();
  }
}
