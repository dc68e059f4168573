/** @module cli/commands/route: which VmService a CLI command uses: the daemon's when one owns this state root, else in-process. */
import { LocalService, openManager, type OpenOptions, type VmService } from '../../vm/index.js';

/** The in-process service (today's direct mode): each verb under the VM's lock file. */
export async function openService(o: OpenOptions): Promise<VmService> {
  return new LocalService(openManager(o));
}
