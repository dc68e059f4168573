/**
 * @module net/links: the port through which host links are read and changed, and its real
 * implementation: one NETLINK_ROUTE socket (the native addon's netlinkOpen/netlinkTalk)
 * carrying the messages of netlink.ts. Each call is one synchronous request/reply with the
 * kernel, tens of microseconds, where an `ip` process costs milliseconds.
 */
import { constants } from 'node:os';
import type { NativeAddon } from '../sys/index.js';
import {
  addMacvtapRequest, delLinkRequest, dumpLinksRequest, getLinkRequest, parseReply, setLinkRequest,
  type LinkChange, type LinkInfo, type MacvtapRequest,
} from './netlink.js';

export type { LinkChange, LinkInfo, MacvtapRequest } from './netlink.js';

/** Reads and changes links of the caller's network namespace. Every method throws a LinkError on failure. */
export interface LinkPort {
  /** The link of that name, or undefined when there is none (ENODEV). */
  get(ifname: string): LinkInfo | undefined;
  /** Every link of the namespace. */
  list(): LinkInfo[];
  set(ifindex: number, change: LinkChange): void;
  /** Deletes the link with that ifindex. */
  remove(ifindex: number): void;
  addMacvtap(r: MacvtapRequest): void;
}

/** A failed netlink request: `code` is the errno name (ENODEV, EEXIST, EOPNOTSUPP ...). */
export class LinkError extends Error {
  readonly code: string;
  constructor(readonly request: string, readonly errno: number, readonly detail?: string) {
    const name = errnoName(errno);
    super(`${request}: ${name}${detail === undefined ? '' : ` (${detail})`}`);
    this.code = name;
  }
}

let names: Map<number, string> | undefined;

/** errno number → name (ENODEV ...), from Node's own table. */
export function errnoName(errno: number): string {
  names ??= new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));
  return names.get(errno) ?? `errno ${errno}`;
}

type Netlink = Pick<NativeAddon, 'netlinkOpen' | 'netlinkTalk' | 'closeFd'>;

/** The real LinkPort: one lazily opened NETLINK_ROUTE socket; `close()` releases it. */
export class RtnlLinks implements LinkPort {
  private fd: number | undefined;
  private seq = 0;

  constructor(private readonly native: Netlink) {}

  private talk(what: string, build: (seq: number) => Buffer): LinkInfo[] {
    this.fd ??= this.native.netlinkOpen();
    const seq = (this.seq = (this.seq + 1) >>> 0);
    let raw: Buffer;
    try {
      raw = this.native.netlinkTalk(this.fd, build(seq));
    } catch (cause) {
      const errno = constants.errno[(cause as NodeJS.ErrnoException).code as keyof typeof constants.errno] ?? constants.errno.EIO;
      throw new LinkError(what, errno, (cause as Error).message);
    }
    const r = parseReply(raw);
    if (r.failure !== undefined) throw new LinkError(what, r.failure.errno, r.failure.message);
    return r.links;
  }

  get(ifname: string): LinkInfo | undefined {
    try {
      return this.talk(`RTM_GETLINK ${ifname}`, (s) => getLinkRequest(s, { ifname }))[0];
    } catch (err) {
      if (err instanceof LinkError && err.code === 'ENODEV') return undefined;
      throw err;
    }
  }

  list(): LinkInfo[] {
    return this.talk('RTM_GETLINK dump', (s) => dumpLinksRequest(s));
  }

  set(ifindex: number, change: LinkChange): void {
    this.talk(`RTM_NEWLINK ifindex ${ifindex} ${JSON.stringify(change)}`, (s) => setLinkRequest(s, ifindex, change));
  }

  remove(ifindex: number): void {
    this.talk(`RTM_DELLINK ifindex ${ifindex}`, (s) => delLinkRequest(s, ifindex));
  }

  addMacvtap(r: MacvtapRequest): void {
    this.talk(`RTM_NEWLINK create macvtap ${r.ifname}`, (s) => addMacvtapRequest(s, r));
  }

  close(): void {
    if (this.fd !== undefined) this.native.closeFd(this.fd);
    this.fd = undefined;
  }
}
