import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineDecoder } from './framing.js';
import { QmpError } from './errors.js';

test('splits CRLF and LF lines across arbitrary chunk boundaries', () => {
  const text = '{"a":1}\r\n{"b":2}\n\r\n{"c":"x\\u00E9"}\r\n';
  for (let cut = 0; cut <= text.length; cut++) {
    const d = new LineDecoder();
    const lines = [...d.push(Buffer.from(text.slice(0, cut))), ...d.push(Buffer.from(text.slice(cut)))];
    assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":"x\\u00E9"}'], `cut at ${cut}`);
    assert.equal(d.pendingBytes, 0);
  }
});

test('keeps an unfinished line until its newline arrives', () => {
  const d = new LineDecoder();
  assert.deepEqual(d.push(Buffer.from('{"ret')), []);
  assert.equal(d.pendingBytes, 5);
  assert.deepEqual(d.push(Buffer.from('urn":{}}\r\n{"x"')), ['{"return":{}}']);
  assert.equal(d.pendingBytes, 4);
});

test('a line at the bound passes, one byte more fails', () => {
  const d = new LineDecoder(10);
  assert.deepEqual(d.push(Buffer.from('0123456789\r\n')), ['0123456789']);
  assert.throws(() => new LineDecoder(10).push(Buffer.from('0123456789A\n')), (e: QmpError) => e.code === 'QMP_PROTOCOL');
  assert.throws(() => new LineDecoder(10).push(Buffer.from('0123456789A\r\n')), (e: QmpError) => e.code === 'QMP_PROTOCOL');
  const split = new LineDecoder(10);
  split.push(Buffer.from('0123456789\r'));
  assert.deepEqual(split.push(Buffer.from('\n')), ['0123456789'], 'a CR split from its LF still counts as the terminator');
});

test('an endless line fails as soon as the held bytes pass the bound, not at its newline', () => {
  const d = new LineDecoder(1000);
  for (let i = 0; i < 9; i++) d.push(Buffer.alloc(100, 0x61));
  assert.equal(d.pendingBytes, 900);
  d.push(Buffer.alloc(101, 0x61)); // 1001 held: the last byte could still be the line's CR
  assert.throws(() => d.push(Buffer.alloc(1, 0x61)), (e: QmpError) => e.code === 'QMP_PROTOCOL' && e.context['maxLineBytes'] === 1000);
  assert.equal(d.pendingBytes, 0, 'the held bytes are released');
});
