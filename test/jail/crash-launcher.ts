/** Test helper process: a manager that dies (exit 9, no cleanup) right after launch step argv[4]. */
import { launchJail, type JailerConfig, type JailSpec, type LaunchStep } from '../../src/jail/index.js';

const [configJson, specJson, step] = process.argv.slice(2);
await launchJail(JSON.parse(specJson!) as JailSpec, {
  fds: new Map(), config: JSON.parse(configJson!) as JailerConfig,
  onStep: (s: LaunchStep) => { if (s === step) process.exit(9); },
});
process.exit(0);
