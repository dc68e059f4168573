/** @module net/facts: what the host offers for VM networking, gathered before planning. */
import type { Fs } from '../sys/index.js';

export interface HostNetFacts {
  /** /dev/net/tun exists: TAP devices can be created. */
  tun: boolean;
  /** /dev/vhost-net exists: the planner may add vhost actions. */
  vhostNet: boolean;
}

/**
 * Device nodes only. macvtap support is deliberately not guessed: it may be built in
 * without any trace in /sys/module (as on the development machines), so the only
 * reliable test is creating one, which applyHostActions reports as NET_MACVTAP_UNSUPPORTED.
 */
export async function hostNetFacts(fs: Fs): Promise<HostNetFacts> {
  const [tun, vhostNet] = await Promise.all([fs.exists('/dev/net/tun'), fs.exists('/dev/vhost-net')]);
  return { tun, vhostNet };
}
