/** A disk image swapped between the probe and the open step of a real start (issue 18, F3): refused at once, nothing opened, no QEMU, nothing left. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { renameSync } from 'node:fs';
import { realBackends } from './backends.js';
import { isVmError } from './errors.js';
import { VmManager } from './manager.js';
import { openManager } from './open.js';
import { holdersUnder, leftovers, testEnv, vmName } from './testing.js';

for (const swap of ['fifo', 'other-file'] as const) {
  test(`start: the top layer replaced by ${swap === 'fifo' ? 'a FIFO with no writer' : 'another file'} after the probe is refused without blocking`, { timeout: 60_000 }, async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
    const env = testEnv('warden-vm-swap-');
    const m0 = openManager({ stateDir: env.stateRoot });
    const real = realBackends({ stateRoot: env.stateRoot });
    // The only fault injected: the swap, right after the real facts (chains) were gathered.
    const backends = {
      ...real,
      async facts(...a: Parameters<typeof real.facts>) {
        const g = await real.facts(...a);
        renameSync(env.overlay, `${env.overlay}.probed`);
        if (swap === 'fifo') execFileSync('mkfifo', [env.overlay]);
        else { execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', `${env.overlay}.new`, '64M']); renameSync(`${env.overlay}.new`, env.overlay); }
        return g;
      },
    };
    const m = new VmManager({ store: m0.store, fs: m0.fs, backends });
    const name = vmName(`wdv-swap-${swap === 'fifo' ? 'f' : 'o'}`);
    t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
    await m.create(env.specFile({ name }));
    await assert.rejects(m.start(name), (e: unknown) => isVmError(e) && e.code === 'VM_START_FAILED' && e.message.includes(`${env.overlay} is not the file that was probed`));
    assert.equal((await m.reconcile(name)).run, undefined, 'no QEMU was started');
    assert.deepEqual(holdersUnder(env.dir), [], 'nobody holds the images');
    assert.deepEqual(leftovers(name, env.stateRoot), []);
  });
}
