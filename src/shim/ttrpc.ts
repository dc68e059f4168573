/**
 * @module shim/ttrpc: a ttrpc server for one protobuf service on a unix socket: frames in,
 * Request decoded, the method's request type decoded with the service's own definition,
 * the handler called (concurrently: Wait blocks for as long as the task runs), the reply
 * or a google.rpc.Status error framed back on the same stream id.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type protobuf from 'protobufjs';
import { grpcCodeFor, GRPC } from './errors.js';
import { FrameReader, encodeFrame, MSG_REQUEST, MSG_RESPONSE } from './framing.js';
import type { Protos } from './protos.js';

/** Request metadata (lower-case keys), e.g. containerd-namespace-ttrpc. */
export type Metadata = Record<string, string>;

export type Handler = (request: Record<string, unknown>, md: Metadata) => Promise<Record<string, unknown>>;

export interface TtrpcServiceOptions {
  protos: Protos;
  service: protobuf.Service;
  handlers: Partial<Record<string, Handler>>;
  /** Called with what a handler threw (for the shim's log). */
  onError?(method: string, err: unknown): void;
}

/** A net.Server that serves `service` over ttrpc (listen is left to the caller). */
export function ttrpcServer(o: TtrpcServiceOptions): Server {
  return createServer((sock) => serveConnection(sock, o));
}

function serveConnection(sock: Socket, o: TtrpcServiceOptions): void {
  const reader = new FrameReader();
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch (err) {
      o.onError?.('(framing)', err);
      sock.destroy(); // ttrpc has no way to answer a frame it cannot delimit
      return;
    }
    for (const f of frames) {
      if (f.type !== MSG_REQUEST) continue;
      void answer(o, f.payload).then((payload) => {
        if (!sock.destroyed) sock.write(encodeFrame({ streamId: f.streamId, type: MSG_RESPONSE, payload }));
      });
    }
  });
}

/** The encoded ttrpc Response for one encoded Request; never throws. */
async function answer(o: TtrpcServiceOptions, raw: Buffer): Promise<Buffer> {
  const { protos } = o;
  const fail = (code: number, message: string): Buffer =>
    Buffer.from(protos.response.encode(protos.response.fromObject({ status: { code, message } })).finish());
  let req: { service: string; method: string; payload: Uint8Array; metadata: Array<{ key: string; value: string }> };
  try {
    req = protos.request.toObject(protos.request.decode(raw), { defaults: true }) as typeof req;
  } catch {
    return fail(GRPC.INVALID_ARGUMENT, 'malformed ttrpc request');
  }
  const method = req.service === o.service.fullName.replace(/^\./, '') ? o.service.methods[req.method] : undefined;
  const handler = o.handlers[req.method];
  if (method === undefined || handler === undefined) return fail(GRPC.UNIMPLEMENTED, `${req.service}/${req.method} is not implemented`);
  const md: Metadata = {};
  for (const kv of req.metadata) md[kv.key.toLowerCase()] = kv.value;
  try {
    const inType = method.resolvedRequestType!;
    const input = inType.toObject(inType.decode(req.payload), { defaults: true, longs: Number });
    const output = await handler(input, md);
    const outType = method.resolvedResponseType!;
    const payload = outType.encode(outType.fromObject(output)).finish();
    return Buffer.from(protos.response.encode(protos.response.fromObject({ payload })).finish());
  } catch (err) {
    o.onError?.(req.method, err);
    return fail(grpcCodeFor(err), String((err as Error)?.message ?? err));
  }
}
