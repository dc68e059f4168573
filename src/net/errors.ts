/** @module net/errors: the typed error of the net module and its stable codes. */
import { WardenError, type WardenErrorOptions } from '../errors/index.js';

/**
 * Stable codes callers branch on. Every one maps to exit status 6 (host setup failed)
 * through the `NET_` prefix in src/errors.
 */
export type NetErrorCode =
  | 'NET_BAD_ACTION'          // a HostAction is malformed (name too long, queue/fd mismatch, bad MAC ...)
  | 'NET_BRIDGE_MISSING'      // the named Linux or OVS bridge does not exist
  | 'NET_NOT_A_BRIDGE'        // the named device exists but is not a Linux bridge
  | 'NET_TAP_EXISTS'          // a device with the TAP's deterministic name already exists
  | 'NET_TAP_CREATE'          // TUNSETIFF (or opening /dev/net/tun) failed
  | 'NET_LINK'                // a netlink link request (RTM_GETLINK/NEWLINK/DELLINK) failed
  | 'NET_OVS'                 // an ovsdb transaction failed, ovsdb is unreachable, or ovs-vswitchd did not apply a change in time
  | 'NET_MACVTAP_UNSUPPORTED' // the kernel cannot create macvtap devices
  | 'NET_MACVTAP'             // creating or opening a macvtap failed
  | 'NET_VHOST_UNAVAILABLE'   // /dev/vhost-net is missing or cannot be opened
  | 'NET_BAD_LOG'             // an undo log could not be parsed
  | 'NET_UNDO';               // undoing left something behind (each failure in context)

export class NetError extends WardenError {
  declare readonly code: NetErrorCode;
  constructor(code: NetErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(code, message, options);
  }
}
