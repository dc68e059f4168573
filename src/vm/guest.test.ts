import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { GUEST_READY_LINE, ensureTestGuest } from './guest.js';

/** Resolves with the accumulated text once `pred` holds, rejects after `ms`. */
function waitFor(get: () => string, pred: (s: string) => boolean, ms: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = (): void => {
      const s = get();
      if (pred(s)) return resolve(s);
      if (Date.now() - start > ms) return reject(new Error(`timed out after ${ms} ms waiting for ${what}; got:\n${s.slice(-2000)}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

test('the test guest boots under TCG, prints its ready line, and powers off on system_powerdown', async (t) => {
  const guest = ensureTestGuest();
  // Serial on stdout, QMP on fd 3 (a socketpair that Node creates for 'pipe').
  const qemu = spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-M', 'q35', '-nodefaults', '-nographic', '-m', '192',
    '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.cmdline,
    '-chardev', 'stdio,id=ser,signal=off', '-serial', 'chardev:ser',
    '-chardev', 'socket,id=mon,fd=3', '-mon', 'chardev=mon,mode=control',
  ], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    qemu.on('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => { if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL'); });
  let serial = '';
  qemu.stdout!.on('data', (b: Buffer) => { serial += b.toString('latin1'); });
  let stderr = '';
  qemu.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const mon = qemu.stdio[3] as Duplex;
  let qmp = '';
  mon.on('data', (b: Buffer) => { qmp += b.toString(); });

  await waitFor(() => serial, (s) => s.includes(GUEST_READY_LINE), 60_000, 'the guest ready line');
  await waitFor(() => qmp, (s) => s.includes('"QMP"'), 30_000, 'the QMP greeting');
  mon.write('{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n');
  await waitFor(() => qmp, (s) => s.includes('"POWERDOWN"'), 30_000, 'the POWERDOWN event');
  // A guest still settling after its ready line can miss one press of the button: press again every 3 s.
  const again = setInterval(() => mon.write('{"execute":"system_powerdown"}\n'), 3_000);
  const timeout = setTimeout(() => qemu.kill('SIGKILL'), 60_000);
  const how = await exited;
  clearInterval(again);
  clearTimeout(timeout);
  assert.deepEqual(how, { code: 0, signal: null }, `QEMU should exit by itself after the guest powers off; stderr: ${stderr}`);
  assert.match(qmp, /"SHUTDOWN".*"guest-shutdown"/s, 'QEMU reports a guest-initiated shutdown');
  assert.match(serial, /reboot: Power down/, 'the guest kernel powered off');
});
