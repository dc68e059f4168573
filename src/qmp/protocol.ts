/** @module qmp/protocol: parses one line from QEMU into a typed message (greeting, reply, error, event); pure. */
import { QmpError } from './errors.js';

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** QEMU's unprompted first message. */
export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

export type QmpMessage =
  | { kind: 'greeting'; greeting: QmpGreeting }
  | { kind: 'return'; id: unknown; value: unknown }
  | { kind: 'error'; id: unknown; errorClass: string; desc: string }
  | { kind: 'event'; event: string; data: Record<string, unknown>; timestamp: QmpTimestamp };

const MAX_SHOWN = 200;

function protocolError(what: string, line: string, cause?: unknown): QmpError {
  const shown = line.length > MAX_SHOWN ? `${line.slice(0, MAX_SHOWN)}...` : line;
  return new QmpError('QMP_PROTOCOL', `reading a QMP message failed: ${what}`, {
    context: { line: shown, lineBytes: line.length },
    cause,
    suggestions: ['make sure the socket is a QMP monitor (-mon mode=control) without pretty=on'],
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Classifies one line; throws QMP_PROTOCOL for anything QMP does not send. */
export function parseMessage(line: string): QmpMessage {
  return classify(parseObject(line), line);
}

/** One line as a JSON object; throws QMP_PROTOCOL for anything else. */
export function parseObject(line: string): Record<string, unknown> {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch (cause) {
    throw protocolError('the line is not valid JSON', line, cause);
  }
  if (!isObject(msg)) throw protocolError('the message is not a JSON object', line);
  return msg;
}

/** Classifies a parsed line (a reply when it has `return`: the client's fast path tests the same). */
export function classify(msg: Record<string, unknown>, line: string): QmpMessage {
  if ('return' in msg) return { kind: 'return', id: msg['id'], value: msg['return'] };
  if ('error' in msg) {
    const e = msg['error'];
    if (!isObject(e) || typeof e['class'] !== 'string' || typeof e['desc'] !== 'string') {
      throw protocolError('an error reply lacks a string class and desc', line);
    }
    return { kind: 'error', id: msg['id'], errorClass: e['class'], desc: e['desc'] };
  }
  if (typeof msg['event'] === 'string') return parseEvent(msg, line);
  if ('QMP' in msg) return { kind: 'greeting', greeting: parseGreeting(msg['QMP'], line) };
  throw protocolError('the message is neither a reply, an event nor a greeting', line);
}

function parseEvent(msg: Record<string, unknown>, line: string): QmpMessage {
  const data = msg['data'] ?? {};
  const ts = msg['timestamp'];
  if (!isObject(data)) throw protocolError(`event ${String(msg['event'])} has non-object data`, line);
  const timestamp = isObject(ts) && typeof ts['seconds'] === 'number' && typeof ts['microseconds'] === 'number'
    ? { seconds: ts['seconds'], microseconds: ts['microseconds'] }
    : { seconds: 0, microseconds: 0 };
  return { kind: 'event', event: msg['event'] as string, data, timestamp };
}

function parseGreeting(qmp: unknown, line: string): QmpGreeting {
  if (!isObject(qmp) || !isObject(qmp['version']) || !isObject(qmp['version']['qemu'])) {
    throw protocolError('the greeting lacks QMP.version.qemu', line);
  }
  const v = qmp['version'];
  const q = v['qemu'] as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' ? x : 0);
  const caps = Array.isArray(qmp['capabilities']) ? qmp['capabilities'].filter((c): c is string => typeof c === 'string') : [];
  return {
    version: { qemu: { major: num(q['major']), minor: num(q['minor']), micro: num(q['micro']) }, package: typeof v['package'] === 'string' ? v['package'] : '' },
    capabilities: caps,
  };
}
