/** @module net/facts: what the host offers for VM networking, gathered before planning. */
import type { Fs } from '../sys/index.js';

export interface HostNetFacts {
  /** /dev/net/tun exists: TAP devices can be created. */
  tun: boolean;
  /** /dev/vhost-net exists: the planner may add vhost actions. */
  vhostNet: boolean;
  /** The macvtap module is loaded (it may still load on demand when absent). */
  macvtapLoaded: boolean;
}

export async function hostNetFacts(fs: Fs): Promise<HostNetFacts> {
  const [tun, vhostNet, macvtapLoaded] = await Promise.all([
    fs.exists('/dev/net/tun'), fs.exists('/dev/vhost-net'), fs.exists('/sys/module/macvtap'),
  ]);
  return { tun, vhostNet, macvtapLoaded };
}
