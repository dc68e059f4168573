import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { attachConsole } from './console.js';
import { isVmError } from './errors.js';

/** A terminal-like input that records raw mode switches. */
function fakeTty(): PassThrough & { isTTY: boolean; modes: boolean[]; setRawMode(raw: boolean): void } {
  const s = Object.assign(new PassThrough(), { isTTY: true, modes: [] as boolean[] });
  return Object.assign(s, { setRawMode(raw: boolean) { s.modes.push(raw); } });
}

test('a console connection reset by the VM side leaves the terminal as it was', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-review-console-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'serial.sock');
  // The server never reads: closing it with the typed byte unread makes the kernel reset the connection.
  let conn: Socket | undefined;
  const server = createServer({ pauseOnConnect: true }, (c: Socket) => { conn = c; });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => { conn?.destroy(); server.close(); });
  const input = fakeTty();
  const output = new PassThrough();
  const attached = attachConsole('wdr-con', path, { input, output }).then((why) => why, (e: unknown) => e);
  for (let i = 0; i < 1000 && (input.modes.length === 0 || conn === undefined); i++) await new Promise((r) => setTimeout(r, 10));
  input.write('x');
  await new Promise((r) => setTimeout(r, 100)); // the byte reaches the server's socket buffer
  conn!.destroy();
  const ended = await attached;
  assert.ok(ended === 'closed' || isVmError(ended, 'VM_IO'), `ended with ${String(ended)}`);
  assert.deepEqual(input.modes, [true, false], 'raw mode is switched off again');
  assert.equal(input.listenerCount('data'), 0, 'no listener is left on the input');
});
