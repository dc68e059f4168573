/**
 * @module shim/events: task events back to containerd as real shims send them: run
 * `containerd --address SOCK publish --topic T --namespace NS` with the event as an encoded
 * google.protobuf.Any on stdin. One at a time, in order (an exit must precede its delete).
 */
import { spawn } from 'node:child_process';
import { packAny, type Protos } from './protos.js';

export interface Publisher {
  publish(ns: string, topic: string, typeName: string, event: Record<string, unknown>): void;
  /** Resolves when everything queued so far was handed to containerd. */
  flush(): Promise<void>;
}

export function binaryPublisher(protos: Protos, binary: string, address: string, log: (line: string) => void): Publisher {
  let tail: Promise<void> = Promise.resolve();
  const any = protos.type('google.protobuf.Any');
  const send = (ns: string, topic: string, payload: Uint8Array): Promise<void> => new Promise((resolve) => {
    const p = spawn(binary, ['--address', address, 'publish', '--topic', topic, '--namespace', ns], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    p.on('error', (e) => { log(`publishing ${topic} failed: ${e.message}`); resolve(); });
    p.on('close', (code) => { if (code !== 0) log(`publishing ${topic} failed (exit ${String(code)}): ${err.trim()}`); resolve(); });
    p.stdin.on('error', () => undefined);
    p.stdin.end(Buffer.from(payload));
  });
  return {
    publish(ns, topic, typeName, event) {
      const a = packAny(protos, typeName, event);
      const payload = any.encode(any.fromObject(a)).finish();
      tail = tail.then(() => send(ns, topic, payload));
    },
    flush: () => tail,
  };
}
