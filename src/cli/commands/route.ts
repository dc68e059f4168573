/**
 * @module cli/commands/route: which VmService a CLI command uses. A daemon that owns the
 * state root (its lock names its socket) gets every verb, so the two never race on a VM;
 * with $WARDEN_SOCKET set and no --state-dir, the daemon there is used if it answers.
 * Otherwise: in-process, each verb under the VM's lock file (direct mode).
 */
// The client side only (not api/index, which loads the server): every CLI command starts here.
import { ApiClient } from '../../api/client.js';
import { RemoteService } from '../../api/remote.js';
import { NodeFs } from '../../sys/index.js';
import { LocalService, StateStore, defaultStateRoot, openManager, type OpenOptions, type VmService } from '../../vm/index.js';

export async function openService(o: OpenOptions): Promise<VmService> {
  const root = o.stateDir ?? defaultStateRoot();
  const owner = await new StateStore(root, new NodeFs()).daemonOwner().catch(() => null);
  if (owner !== null) return new RemoteService(new ApiClient(owner.socket), root, o.progress);
  const socket = process.env['WARDEN_SOCKET'];
  if (socket && o.stateDir === undefined && !process.env['WARDEN_STATE_DIR']) {
    const client = new ApiClient(socket, 2000);
    const served = await client.root().catch(() => null);
    if (served !== null) return new RemoteService(new ApiClient(socket), served.stateRoot, o.progress);
  }
  return new LocalService(openManager(o));
}
