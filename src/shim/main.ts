/** @module shim/main: the entry of bin/containerd-shim-warden-v1: start, delete (both run by containerd) and serve. */
import { formatErrorChain } from '../errors/index.js';
import { parseShimArgs } from './args.js';

async function main(): Promise<void> {
  const a = parseShimArgs(process.argv.slice(2), process.cwd());
  if (a.action === 'start') {
    const { startShim } = await import('./launch.js');
    process.stdout.write(await startShim(a));
  } else if (a.action === 'delete') {
    const { deleteAfterDeadShim } = await import('./cleanup.js');
    process.stdout.write(await deleteAfterDeadShim(a));
  } else {
    const { serve } = await import('./server.js');
    await serve(a);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`containerd-shim-warden-v1: ${formatErrorChain(err).join(': ')}\n`);
  process.exit(1);
});
