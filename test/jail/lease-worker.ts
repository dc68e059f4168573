/** Test helper process: acquires one lease in the given state dir and prints the uid (for the concurrency test). */
import { LeaseStore, defaultJailerConfig } from '../../src/jail/index.js';

const [stateDir, name] = process.argv.slice(2);
const store = new LeaseStore(defaultJailerConfig({ stateDir: stateDir!, uidRange: { first: 231152, count: 16 } }), async () => true);
const r = await store.acquire({ name: name!, cgroupName: name!, cgroupLeaves: [], statusFile: '/nonexistent' });
process.stdout.write(`${r.uid}\n`);
