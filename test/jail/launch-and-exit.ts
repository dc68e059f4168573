/** Test helper process: launches one jail from argv (config JSON, spec JSON), prints the program pid and exits, as a manager would. */
import { launchJail, type JailerConfig, type JailSpec } from '../../src/jail/index.js';

const [configJson, specJson] = process.argv.slice(2);
const handle = await launchJail(JSON.parse(specJson!) as JailSpec, { fds: new Map(), config: JSON.parse(configJson!) as JailerConfig });
process.stdout.write(`${handle.pid}\n`);
