/**
 * @module vm/cloudinit: the start step that writes the cloud-init seed where the plan put
 * its fd (before `open` opens it read-only for QEMU), adding warden's own SSH key for the
 * first user when that user brings none.
 */
import { buildSeed, ensureWardenKey, needsWardenKey, writeSeed } from '../cloudinit/index.js';
import type { CloudInit } from '../spec/index.js';
import { NodeProcessRunner } from '../sys/index.js';
import type { StartCtx } from './start.js';
import type { Step } from './steps.js';

export const seedStep: Step<StartCtx> = {
  name: 'seed', label: 'writing the cloud-init seed',
  async run(c) {
    const ci = c.rec.spec['cloudInit'] as CloudInit | undefined;
    const fd = c.plan!.fds.find((f) => f.name === 'cloudinit-seed');
    if (ci === undefined || fd === undefined || fd.kind !== 'file') return;
    const runner = new NodeProcessRunner();
    let wardenKey: string | undefined;
    if (needsWardenKey(ci)) {
      const key = await ensureWardenKey(c.d.store.root, runner);
      if (key.created) c.warnings.push(`made warden's SSH key ${key.identity} for cloud-init user ${ci.users[0]!.name} (it had no sshAuthorizedKeys); warden ssh uses it`);
      wardenKey = key.publicKey;
    }
    await writeSeed(buildSeed({ vm: c.rec.name, cloudInit: ci, ...(wardenKey === undefined ? {} : { wardenKey }) }), fd.path, runner);
  },
};
