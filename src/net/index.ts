/** @module net: host network plumbing (TAP on bridges and OVS, macvtap, vhost). */
export type { HostAction, MacvtapMode } from './actions.js';
