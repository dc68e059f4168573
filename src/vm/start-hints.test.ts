/** The hint a start that QEMU aborted gets from QEMU's last words. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { knownCause } from './start.js';

test('a host forward QEMU could not set up is blamed on a taken port, with the command that shows its holder', () => {
  const last = `-netdev {"type":"user","id":"net-net0","hostfwd":[{"str":"tcp:127.0.0.1:18080-:8080"}]}: Could not set up host forwarding rule 'tcp:127.0.0.1:18080-:8080'`;
  assert.deepEqual(knownCause(last), [`host port 127.0.0.1:18080 (tcp) is probably taken, by another VM's forward or another program: ss -lnp 'sport = :18080'`]);
  assert.deepEqual(knownCause('some other failure'), []);
});
