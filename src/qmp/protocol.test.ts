import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from './protocol.js';
import { QmpError } from './errors.js';

test('classifies the four kinds of QMP message', () => {
  const g = parseMessage('{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}');
  assert.deepEqual(g, { kind: 'greeting', greeting: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian' }, capabilities: ['oob'] } });
  assert.deepEqual(parseMessage('{"return": {}, "id": "w1"}'), { kind: 'return', id: 'w1', value: {} });
  assert.deepEqual(parseMessage('{"id": 6, "error": {"class": "GenericError", "desc": "no"}}'),
    { kind: 'error', id: 6, errorClass: 'GenericError', desc: 'no' });
  assert.deepEqual(parseMessage('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}'),
    { kind: 'event', event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } });
});

test('rejects what QMP never sends, keeping a bounded excerpt of the line', () => {
  const bad = ['{"execute": ', '[1,2]', '"str"', 'null', '{"foo": 1}', '{"error": "x", "id": 1}', '{"event": "X", "data": [1]}', '{"QMP": {}}'];
  for (const line of bad) {
    assert.throws(() => parseMessage(line), (e: QmpError) => e.code === 'QMP_PROTOCOL' && e.context['line'] === line, line);
  }
  const long = `{"x": "${'a'.repeat(5000)}`;
  assert.throws(() => parseMessage(long), (e: QmpError) => String(e.context['line']).length < 300 && e.context['lineBytes'] === long.length);
});
