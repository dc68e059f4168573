import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from './native.js';

const native = loadNative();

test('sendFds/recvFds carry a file descriptor across a socketpair', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-native-'));
  const [a, b] = native.socketpair();
  try {
    writeFileSync(join(dir, 'f'), 'hello through SCM_RIGHTS');
    const fd = openSync(join(dir, 'f'), 'r');
    assert.equal(native.sendFds(a, Buffer.from('x'), [fd]), 1);
    closeSync(fd);
    const got = native.recvFds(b, 64);
    assert.equal(got.data.toString(), 'x');
    assert.equal(got.fds.length, 1);
    const buf = Buffer.alloc(64);
    const n = readSync(got.fds[0]!, buf, 0, 64, 0);
    assert.equal(buf.subarray(0, n).toString(), 'hello through SCM_RIGHTS');
    native.closeFd(got.fds[0]!);
  } finally {
    native.closeFd(a);
    native.closeFd(b);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('recvFds sees a closed peer as end of stream, and closeFd reports EBADF', () => {
  const [a, b] = native.socketpair();
  native.closeFd(a);
  // Peer closed: recvmsg returns 0 bytes, not an error.
  const got = native.recvFds(b, 16);
  assert.equal(got.data.length, 0);
  native.closeFd(b);
  assert.throws(() => native.closeFd(b), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
});

test('sendFds refuses bad arguments with a typed error', () => {
  assert.throws(() => native.sendFds(0, new Uint8Array(0), []), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
  assert.throws(() => native.sendFds(0, Buffer.from('x'), [-1]), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
});

test('openTap creates a TAP device that disappears when its last fd closes', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to create TAP devices');
  if (!existsSync('/dev/net/tun')) return t.skip('no /dev/net/tun on this host');
  const tap = native.openTap('wdtest%d', 2, true);
  try {
    assert.match(tap.name, /^wdtest\d+$/);
    assert.equal(tap.fds.length, 2);
    assert.ok(existsSync(`/sys/class/net/${tap.name}`), 'the TAP exists while its fds are open');
    const flags = Number.parseInt(require_tun_flags(tap.name), 16);
    assert.ok((flags & 0x0100) !== 0, 'IFF_MULTI_QUEUE set for 2 queues');
  } finally {
    for (const fd of tap.fds) native.closeFd(fd);
  }
  assert.ok(!existsSync(`/sys/class/net/${tap.name}`), 'the TAP is gone once its fds are closed');
  assert.throws(() => native.openTap('this-name-is-too-long', 1, true), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
});

function require_tun_flags(name: string): string {
  const fd = openSync(`/sys/class/net/${name}/tun_flags`, 'r');
  try {
    const buf = Buffer.alloc(32);
    return buf.subarray(0, readSync(fd, buf, 0, 32, 0)).toString().trim();
  } finally {
    closeSync(fd);
  }
}
