/**
 * @module net/netlink: the rtnetlink link messages qemu-warden sends (RTM_GETLINK,
 * RTM_NEWLINK, RTM_DELLINK) and the replies it reads, as pure encode/decode functions over
 * bytes (uapi linux/netlink.h, linux/rtnetlink.h, linux/if_link.h). No I/O: see links.ts.
 */

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** Ack flags: the echoed request was cut (NETLINK_CAP_ACK) / extended-ack attributes follow. */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_EXT_MASK = 29;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_MACVLAN_MODE = 1;
/** RTEXT_FILTER_SKIP_STATS: replies without the (large) statistics attributes. */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const IFF_UP = 0x1;

const HDR = 16;
const IFINFO = 16;

export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;

/** What a link reply says about one device. */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  up: boolean;
  /** ifindex of the master (a Linux bridge), 0 for none. */
  master: number;
  /** IFLA_INFO_KIND ("bridge", "tun", "macvtap", "openvswitch" ...), when the kernel names one. */
  kind?: string;
  alias?: string;
  /** Link-layer address, aa:bb:cc:dd:ee:ff. */
  address?: string;
}

/** A change to one existing link (RTM_NEWLINK without NLM_F_CREATE). */
export interface LinkChange {
  address?: string;
  mtu?: number;
  alias?: string;
  /** ifindex of the new master; 0 detaches (nomaster). */
  master?: number;
  up?: boolean;
}

export interface MacvtapRequest {
  ifname: string;
  /** ifindex of the lower device. */
  lower: number;
  mac: string;
  mode: keyof typeof MACVLAN_MODES;
}

const align4 = (n: number): number => (n + 3) & ~3;

function attr(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(align4(4 + payload.length));
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0, 0); return b; };
const str = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
const mac = (s: string): Buffer => Buffer.from(s.split(':').map((x) => Number.parseInt(x, 16)));

function message(type: number, flags: number, seq: number, ifi: { index?: number; flags?: number; change?: number }, attrs: Buffer[]): Buffer {
  const body = Buffer.alloc(IFINFO);
  body.writeUInt8(0, 0); // AF_UNSPEC
  body.writeInt32LE(ifi.index ?? 0, 4);
  body.writeUInt32LE(ifi.flags ?? 0, 8);
  body.writeUInt32LE(ifi.change ?? 0, 12);
  const payload = Buffer.concat([body, ...attrs]);
  const hdr = Buffer.alloc(HDR);
  hdr.writeUInt32LE(HDR + payload.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(NLM_F_REQUEST | flags, 6);
  hdr.writeUInt32LE(seq >>> 0, 8);
  return Buffer.concat([hdr, payload]);
}

/** RTM_GETLINK for one device, by name or by ifindex. */
export function getLinkRequest(seq: number, which: { ifname: string } | { ifindex: number }): Buffer {
  const skip = attr(IFLA_EXT_MASK, u32(RTEXT_FILTER_SKIP_STATS));
  return 'ifname' in which
    ? message(RTM_GETLINK, NLM_F_ACK, seq, {}, [attr(IFLA_IFNAME, str(which.ifname)), skip])
    : message(RTM_GETLINK, NLM_F_ACK, seq, { index: which.ifindex }, [skip]);
}

/** RTM_GETLINK dump of every device of the namespace. */
export function dumpLinksRequest(seq: number): Buffer {
  return message(RTM_GETLINK, NLM_F_DUMP, seq, {}, [attr(IFLA_EXT_MASK, u32(RTEXT_FILTER_SKIP_STATS))]);
}

/** RTM_NEWLINK changing an existing link: like `ip link set dev X address A mtu M alias S master B up`. */
export function setLinkRequest(seq: number, ifindex: number, c: LinkChange): Buffer {
  const attrs: Buffer[] = [];
  if (c.address !== undefined) attrs.push(attr(IFLA_ADDRESS, mac(c.address)));
  if (c.mtu !== undefined) attrs.push(attr(IFLA_MTU, u32(c.mtu)));
  if (c.alias !== undefined) attrs.push(attr(IFLA_IFALIAS, Buffer.from(c.alias, 'utf8')));
  if (c.master !== undefined) attrs.push(attr(IFLA_MASTER, u32(c.master)));
  const ifi = c.up === undefined ? { index: ifindex } : { index: ifindex, flags: c.up ? IFF_UP : 0, change: IFF_UP };
  return message(RTM_NEWLINK, NLM_F_ACK, seq, ifi, attrs);
}

/** RTM_DELLINK of one device by ifindex (never by name: the name may meanwhile be another device's). */
export function delLinkRequest(seq: number, ifindex: number): Buffer {
  return message(RTM_DELLINK, NLM_F_ACK, seq, { index: ifindex }, []);
}

/** RTM_NEWLINK creating a macvtap: `ip link add link LOWER name X address A type macvtap mode M`. */
export function addMacvtapRequest(seq: number, r: MacvtapRequest): Buffer {
  const info = Buffer.concat([attr(IFLA_INFO_KIND, str('macvtap')), attr(IFLA_INFO_DATA, attr(IFLA_MACVLAN_MODE, u32(MACVLAN_MODES[r.mode])))]);
  return message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 0 + seq, {}, [
    attr(IFLA_IFNAME, str(r.ifname)), attr(IFLA_LINK, u32(r.lower)), attr(IFLA_ADDRESS, mac(r.mac)), attr(IFLA_LINKINFO, info),
  ]);
}

/** The attributes of a run of rtattrs, type → payload (the first of each type). */
function attrs(b: Buffer, from: number, to: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let at = from; at + 4 <= to;) {
    const len = b.readUInt16LE(at);
    if (len < 4 || at + len > to) break;
    const type = b.readUInt16LE(at + 2) & 0x3fff; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (!out.has(type)) out.set(type, b.subarray(at + 4, at + len));
    at += align4(len);
  }
  return out;
}

const cstr = (b: Buffer | undefined): string | undefined => {
  if (b === undefined) return undefined;
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
};

function linkInfo(b: Buffer, at: number, len: number): LinkInfo {
  const a = attrs(b, at + HDR + IFINFO, at + len);
  const info = a.get(IFLA_LINKINFO);
  const kind = info === undefined ? undefined : cstr(attrs(info, 0, info.length).get(IFLA_INFO_KIND));
  const addr = a.get(IFLA_ADDRESS);
  const alias = cstr(a.get(IFLA_IFALIAS));
  return {
    ifindex: b.readInt32LE(at + HDR + 4), ifname: cstr(a.get(IFLA_IFNAME)) ?? '',
    mtu: a.get(IFLA_MTU)?.readUInt32LE(0) ?? 0, up: (b.readUInt32LE(at + HDR + 8) & IFF_UP) !== 0,
    master: a.get(IFLA_MASTER)?.readUInt32LE(0) ?? 0,
    ...(kind === undefined ? {} : { kind }), ...(alias === undefined || alias === '' ? {} : { alias }),
    ...(addr === undefined ? {} : { address: [...addr].map((x) => x.toString(16).padStart(2, '0')).join(':') }),
  };
}

/** A negative errno from the kernel, with its extended-ack message when it sent one. */
export interface NetlinkFailure {
  errno: number;
  message?: string;
}

export interface Reply {
  links: LinkInfo[];
  /** Set when the request failed (an NLMSG_ERROR with a non-zero error). */
  failure?: NetlinkFailure;
}

/** Decodes the messages netlinkTalk returned for one request. */
export function parseReply(b: Buffer): Reply {
  const links: LinkInfo[] = [];
  for (let at = 0; at + HDR <= b.length;) {
    const len = b.readUInt32LE(at);
    if (len < HDR || at + len > b.length) break;
    const type = b.readUInt16LE(at + 4);
    if (type === RTM_NEWLINK && len >= HDR + IFINFO) links.push(linkInfo(b, at, len));
    if (type === NLMSG_ERROR && len >= HDR + 4) {
      const errno = -b.readInt32LE(at + HDR);
      if (errno !== 0) return { links, failure: { errno, ...extAck(b, at, len) } };
    }
    at += align4(len);
  }
  return { links };
}

/** The NLMSGERR_ATTR_MSG text of an error ack (NETLINK_EXT_ACK), if any. */
function extAck(b: Buffer, at: number, len: number): { message?: string } {
  const flags = b.readUInt16LE(at + 6);
  if ((flags & NLM_F_ACK_TLVS) === 0) return {};
  const echoed = (flags & NLM_F_CAPPED) !== 0 ? HDR : b.readUInt32LE(at + HDR + 4);
  const msg = cstr(attrs(b, at + HDR + 4 + align4(echoed), at + len).get(NLMSGERR_ATTR_MSG));
  return msg === undefined || msg === '' ? {} : { message: msg };
}
