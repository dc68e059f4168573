/**
 * @module cli/commands/route: which VmService a CLI command uses. A daemon that owns the
 * state root (its lock names its socket) gets every verb, so the two never race on a VM;
 * with $WARDEN_SOCKET set and no --state-dir, the daemon there is used if it answers.
 * Otherwise: in-process, each verb under the VM's lock file (direct mode).
 */
import type { OpenOptions, VmService } from '../../vm/index.js';

// Loaded when a command asks for its service, never at start-up (issue 16): the client side
// only (not api/index, which loads the server); node:http only when a daemon is there to ask;
// the vm lifecycle (the vm barrel) only in direct mode: a verb the daemon serves needs the store's lock only.
const vm = () => import('../../vm/index.js');
const api = () => Promise.all([import('../../api/client.js'), import('../../api/remote.js')]);

export async function openService(o: OpenOptions): Promise<VmService> {
  const [{ StateStore, defaultStateRoot }, { NodeFs }] = await Promise.all([import('../../vm/store.js'), import('../../sys/index.js')]);
  const root = o.stateDir ?? defaultStateRoot();
  const owner = await new StateStore(root, new NodeFs()).daemonOwner().catch(() => null);
  if (owner !== null) {
    const [{ ApiClient }, { RemoteService }] = await api();
    return new RemoteService(new ApiClient(owner.socket), root, o.progress);
  }
  const socket = process.env['WARDEN_SOCKET'];
  if (socket && o.stateDir === undefined && !process.env['WARDEN_STATE_DIR']) {
    const [{ ApiClient }, { RemoteService }] = await api();
    const client = new ApiClient(socket, 2000);
    const served = await client.root().catch(() => null);
    if (served !== null) return new RemoteService(new ApiClient(socket), served.stateRoot, o.progress);
  }
  const { LocalService, openManager } = await vm();
  return new LocalService(openManager(o));
}

