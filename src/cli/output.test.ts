/** reportError: the human form of an error shows what a failed helper said. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WardenError } from '../errors/index.js';
import { reportError, type Io } from './output.js';

function capture(): Io & { stderr: string } {
  const io = { stderr: '', out() { /* unused */ }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('a helper\'s stderr kept in context is printed (it is often the only reason), once, and not when the message has it', () => {
  const said = 'ovs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed (No such file or directory)';
  let io = capture();
  assert.equal(reportError(io, new WardenError('NET_OVS', 'checking Open vSwitch bridge br0 failed (exit 1)', { context: { stderr: `${said}\n` }, suggestions: ['is ovsdb-server running?'] }), false), 6);
  assert.equal(io.stderr, `error: checking Open vSwitch bridge br0 failed (exit 1) [NET_OVS]\n  stderr: ${said}\n  hint: is ovsdb-server running?\n`);
  io = capture();
  reportError(io, new WardenError('NET_LINK', `ip failed: ${said}`, { context: { stderr: said } }), false);
  assert.doesNotMatch(io.stderr, /stderr:/);
});

test('a multi-line error (a spec with several issues) has its code on the first line, not after the last issue', () => {
  const io = capture();
  reportError(io, new WardenError('SPEC_INVALID', 'spec v.yaml is invalid: 2 problems\n  v.yaml:3:1: a\n  v.yaml:4:1: b'), false);
  assert.equal(io.stderr, 'error: spec v.yaml is invalid: 2 problems [SPEC_INVALID]\n  v.yaml:3:1: a\n  v.yaml:4:1: b\n');
});
