import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capLog } from './logcap.js';

test('a log over its cap is rotated to .1 and truncated; an O_APPEND writer continues at the new end', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-logcap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'serial.log');
  const fd = openSync(path, 'a'); // as QEMU holds it
  try {
    writeSync(fd, 'x'.repeat(100));
    assert.equal(await capLog(path, 200), false);
    writeSync(fd, 'y'.repeat(150));
    assert.equal(await capLog(path, 200), true);
    assert.equal(readFileSync(`${path}.1`, 'utf8').length, 250);
    writeSync(fd, 'after');
    assert.equal(readFileSync(path, 'utf8'), 'after', 'no hole: the appending writer follows the truncation');
  } finally {
    closeSync(fd);
  }
});
