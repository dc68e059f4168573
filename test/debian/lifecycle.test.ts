/**
 * The Debian image under warden (real QEMU, TCG, jailed as root), once per firmware: from a
 * qcow2 overlay in a 0700 directory it boots, cloud-init (a NoCloud seed warden made)
 * creates the spec's users with their keys, `warden ssh VM -- id -un` logs in as the first
 * one with no -i (warden's own key, made in the state root), `-l/-i` as another, `stop`
 * ends as a guest poweroff (the ACPI power button, handled by systemd-logind), and
 * nothing is left on the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openManager } from '../../src/vm/open.js';
import { leftovers, vmName, waitForText } from '../../src/vm/testing.js';
import { REPO, debianImage, ovmf, overlayDir } from './image.js';

const root = process.getuid?.() === 0;
const BIN = join(REPO, 'dist', 'src', 'cli', 'bin.js');

function warden(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `warden ssh` until it succeeds (sshd comes up after cloud-init made the users) or the deadline passes. */
async function sshUntil(args: string[], deadlineMs: number): Promise<{ stdout: string; stderr: string }> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const r = warden(args);
    if (r.status === 0) return r;
    if (Date.now() > until) throw new Error(`warden ${args.join(' ')} kept failing; last status ${String(r.status)}: ${r.stderr.slice(-800)}`);
    await new Promise((res) => setTimeout(res, 3000));
  }
}

for (const firmware of ['bios', 'uefi'] as const) {
  test(`warden boots the Debian image with ${firmware} from a 0700 directory; cloud-init users; warden ssh; stop is a guest poweroff; nothing is left`, { timeout: 480_000 }, async (t) => {
    if (!root) return t.skip('needs root: the jailer switches uids and creates cgroups');
    const img = debianImage();
    if ('skip' in img) return t.skip(img.skip);
    if (firmware === 'uefi' && ovmf() === null) return t.skip('no OVMF firmware on this host (package ovmf)');
    const o = overlayDir(img.path);
    const stateRoot = join(o.dir, 'state');
    const m = openManager({ stateDir: stateRoot });
    t.after(async () => {
      for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
      o.cleanup();
    });
    // bob brings his own key, kept in the 0700 directory as a user's ~/.ssh would be.
    const bobKey = join(o.dir, 'bob_ed25519');
    assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bob', '-f', bobKey]).status, 0);
    const name = vmName(`wdd-${firmware}`);
    const spec = join(o.dir, 'debian.json');
    writeFileSync(spec, JSON.stringify({
      apiVersion: 'warden/v1', name, memory: '768Mi', accel: 'tcg', firmware,
      // The shared base lies outside the overlay's directory: the image policy must be told.
      disks: [{ name: 'root', image: o.overlay, format: 'qcow2', bootIndex: 0, allowDirs: [dirname(img.path)] }],
      networks: [{ name: 'net0', type: 'user', forwards: [{ host: 0, guest: 22 }] }], // a free port chosen at start
      cloudInit: {
        hostname: 'deb-test',
        users: [{ name: 'alice', sudo: true }, { name: 'bob', sshAuthorizedKeys: [readFileSync(`${bobKey}.pub`, 'utf8').trim()] }],
      },
    }));
    await m.create(spec);
    const started = await m.start(name);
    assert.ok((started.record.run?.forwards ?? []).some((f) => f.guest === 22 && f.host > 0), 'start recorded the port it chose');
    assert.ok(started.warnings.some((w) => w.includes("made warden's SSH key") && w.includes('alice')), `start says it made a key: ${started.warnings.join('; ')}`);
    const log = m.store.paths(name).serialLog;
    await waitForText(log, 'deb-test login:', 300_000);

    const state = ['--state-dir', stateRoot];
    const alice = await sshUntil(['ssh', ...state, name, '--', 'id', '-un'], 120_000);
    assert.equal(alice.stdout.trim(), 'alice', 'no -i: warden\'s key, and the first cloud-init user');
    assert.match(alice.stderr, /using warden's key/);
    assert.equal(warden(['ssh', ...state, name, '--', 'sudo', '-n', 'id', '-u']).stdout.trim(), '0', 'sudo: true is passwordless sudo');
    const bob = warden(['ssh', ...state, '-l', 'bob', '-i', bobKey, name, '--', 'id', '-un']);
    assert.deepEqual([bob.status, bob.stdout.trim()], [0, 'bob'], bob.stderr);
    const status = warden(['ssh', ...state, name, '--', 'sh', '-c', 'exit 3']);
    assert.equal(status.status, 3, 'the remote command\'s status is warden ssh\'s');
    if (firmware === 'uefi') assert.ok(existsSync(m.store.paths(name).uefiVars), 'the VM has its own UEFI variable store');
    assert.match(readFileSync(join(m.store.paths(name).dir, 'known_hosts'), 'utf8'), new RegExp(`^warden-${name} `, 'm'), 'the host key went into the VM\'s own known_hosts');

    const stopped = await m.stop(name, { timeoutS: 120 });
    assert.deepEqual([stopped.phase, stopped.lastExit?.reason, stopped.lastExit?.code], ['stopped', 'stopped', 0]);
    assert.match(stopped.lastExit?.detail ?? '', /guest powered off/);
    await waitForText(log, 'reboot: Power down', 5_000);
    assert.deepEqual(leftovers(name, stateRoot), []);
  });
}
