/* warden_native: the few syscalls Node lacks. TAP fds (TUNSETIFF), fds over unix
 * sockets (SCM_RIGHTS), socketpair, pipe, pidfds, a NETLINK_ROUTE request/reply exchange. Every fd returned is O_CLOEXEC; the caller passes
 * it on explicitly (spawn stdio) or closes it. Errors throw with the errno name as code. */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <signal.h>
#include <linux/if.h>
#include <linux/if_tun.h>

#define MAX_FDS 253   /* SCM_MAX_FD */
#define MAX_QUEUES 16

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN"; case EACCES: return "EACCES"; case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST"; case EINVAL: return "EINVAL"; case ENODEV: return "ENODEV";
    case EMFILE: return "EMFILE"; case ENOTSOCK: return "ENOTSOCK"; case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET"; case ENOTCONN: return "ENOTCONN"; case EINTR: return "EINTR";
    case ESRCH: return "ESRCH"; case ENOSYS: return "ENOSYS";
    case E2BIG: return "E2BIG"; case EMSGSIZE: return "EMSGSIZE"; case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* openTap(name: string, queues: number, vnetHdr: boolean) -> {name, fds}
 * name may be "" or a pattern such as "wd%d" for the kernel to choose. */
static napi_value open_tap(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ]; size_t len = 0; int32_t queues = 1; bool vnet = true;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok
      || !get_int(env, argv[1], &queues) || napi_get_value_bool(env, argv[2], &vnet) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "openTap(name, queues, vnetHdr)");
    return NULL;
  }
  if (len >= IFNAMSIZ - 1 || queues < 1 || queues > MAX_QUEUES) {
    napi_throw_range_error(env, "EINVAL", "openTap: name longer than 15 bytes or queues out of 1..16");
    return NULL;
  }
  int fds[MAX_QUEUES]; int n = 0;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, len);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (queues > 1 ? IFF_MULTI_QUEUE : 0);
  for (n = 0; n < queues; n++) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int e = errno;
      if (fd >= 0) close(fd);
      for (int i = 0; i < n; i++) close(fds[i]);
      return throw_errno(env, fd < 0 ? "open /dev/net/tun" : "TUNSETIFF", e);
    }
    fds[n] = fd;
  }
  napi_value result, jname, jfds;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &jname);
  napi_create_array_with_length(env, (size_t)n, &jfds);
  for (int i = 0; i < n; i++) {
    napi_value v; napi_create_int32(env, fds[i], &v); napi_set_element(env, jfds, (uint32_t)i, v);
  }
  napi_set_named_property(env, result, "name", jname);
  napi_set_named_property(env, result, "fds", jfds);
  return result;
}

/* sendFds(sockFd: number, data: Uint8Array, fds: number[]) -> bytes sent.
 * One sendmsg; the fds ride on the first byte. Throws EAGAIN when the socket is full. */
static napi_value send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t sock; void *data = NULL; size_t dlen = 0; uint32_t nfds = 0;
  napi_typedarray_type tt; napi_value ab; size_t off;
  bool is_arr = false;
  if (argc < 3 || !get_int(env, argv[0], &sock)
      || napi_get_typedarray_info(env, argv[1], &tt, &dlen, &data, &ab, &off) != napi_ok
      || napi_is_array(env, argv[2], &is_arr) != napi_ok || !is_arr
      || napi_get_array_length(env, argv[2], &nfds) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "sendFds(sockFd, Uint8Array, fds[])");
    return NULL;
  }
  if (tt != napi_uint8_array || dlen == 0 || nfds > MAX_FDS) {
    napi_throw_range_error(env, "EINVAL", "sendFds: data must be a non-empty Uint8Array and at most 253 fds");
    return NULL;
  }
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v; napi_get_element(env, argv[2], i, &v);
    if (!get_int(env, v, &fds[i]) || fds[i] < 0) {
      napi_throw_type_error(env, "EINVAL", "sendFds: fds must be non-negative integers");
      return NULL;
    }
  }
  struct iovec iov = { .iov_base = data, .iov_len = dlen };
  struct msghdr msg; memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov; msg.msg_iovlen = 1;
  char *cbuf = NULL;
  if (nfds > 0) {
    size_t clen = CMSG_SPACE(sizeof(int) * nfds);
    cbuf = calloc(1, clen);
    if (cbuf == NULL) return throw_errno(env, "sendFds", ENOMEM);
    msg.msg_control = cbuf; msg.msg_controllen = clen;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
  int e = errno;
  free(cbuf);
  if (n < 0) return throw_errno(env, "sendmsg", e);
  napi_value r; napi_create_int64(env, n, &r);
  return r;
}

/* recvFds(sockFd: number, maxBytes: number) -> {data: Buffer, fds: number[]} (fds O_CLOEXEC).
 * Throws EAGAIN when nothing is waiting. */
static napi_value recv_fds(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t sock, max;
  if (argc < 2 || !get_int(env, argv[0], &sock) || !get_int(env, argv[1], &max) || max <= 0 || max > (1 << 20)) {
    napi_throw_type_error(env, "EINVAL", "recvFds(sockFd, maxBytes in 1..1MiB)");
    return NULL;
  }
  void *buf = malloc((size_t)max);
  size_t clen = CMSG_SPACE(sizeof(int) * MAX_FDS);
  char *cbuf = calloc(1, clen);
  if (buf == NULL || cbuf == NULL) { free(buf); free(cbuf); return throw_errno(env, "recvFds", ENOMEM); }
  struct iovec iov = { .iov_base = buf, .iov_len = (size_t)max };
  struct msghdr msg; memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov; msg.msg_iovlen = 1; msg.msg_control = cbuf; msg.msg_controllen = clen;
  ssize_t n;
  do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
  if (n < 0) { int e = errno; free(buf); free(cbuf); return throw_errno(env, "recvmsg", e); }
  napi_value result, jdata, jfds;
  napi_create_object(env, &result);
  void *copy; napi_create_buffer_copy(env, (size_t)n, buf, &copy, &jdata);
  napi_create_array(env, &jfds);
  uint32_t k = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *p = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < cnt; i++) {
      napi_value v; napi_create_int32(env, p[i], &v); napi_set_element(env, jfds, k++, v);
    }
  }
  free(buf); free(cbuf);
  napi_set_named_property(env, result, "data", jdata);
  napi_set_named_property(env, result, "fds", jfds);
  return result;
}

/* tapIfName(fd) -> string: the interface a TAP or macvtap fd is attached to (TUNGETIFF). */
static napi_value tap_if_name(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_int(env, argv[0], &fd)) { napi_throw_type_error(env, "EINVAL", "tapIfName(fd)"); return NULL; }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) return throw_errno(env, "TUNGETIFF", errno);
  napi_value r;
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &r);
  return r;
}

/* [fds[0], fds[1]] as a JS array. */
static napi_value fd_pair(napi_env env, const int fds[2]) {
  napi_value arr, a, b;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_int32(env, fds[0], &a); napi_create_int32(env, fds[1], &b);
  napi_set_element(env, arr, 0, a); napi_set_element(env, arr, 1, b);
  return arr;
}

/* socketpair() -> [fd, fd]: AF_UNIX SOCK_STREAM, both O_CLOEXEC. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return throw_errno(env, "socketpair", errno);
  return fd_pair(env, sv);
}

/* pipe() -> [readFd, writeFd]: both O_CLOEXEC (a write-only end, as QEMU's fdsets want for a log). */
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return throw_errno(env, "pipe2", errno);
  return fd_pair(env, p);
}

/* pidfdOpen(pid) -> fd: a handle on that one process, never on a later holder of its pid. */
static napi_value pidfd_open_(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t pid;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_int(env, argv[0], &pid) || pid <= 0) { napi_throw_type_error(env, "EINVAL", "pidfdOpen(pid)"); return NULL; }
  long fd = syscall(SYS_pidfd_open, pid, 0); /* pidfds are close-on-exec */
  if (fd < 0) return throw_errno(env, "pidfd_open", errno);
  napi_value r; napi_create_int32(env, (int32_t)fd, &r);
  return r;
}

/* pidfdSignal(fd, signo): pidfd_send_signal(2). */
static napi_value pidfd_signal(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; int32_t fd, sig;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &sig)) { napi_throw_type_error(env, "EINVAL", "pidfdSignal(fd, signo)"); return NULL; }
  if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0) return throw_errno(env, "pidfd_send_signal", errno);
  return NULL;
}

/* closeFd(fd): close(2); EBADF is reported. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_int(env, argv[0], &fd)) { napi_throw_type_error(env, "EINVAL", "closeFd(fd)"); return NULL; }
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* memfdSealed(name, data) -> fd: an anonymous memory file holding exactly `data`, sealed
 * against any write, growth or shrink (F_SEAL_SEAL|WRITE|GROW|SHRINK), close-on-exec. A
 * program given it reads a snapshot nobody can change, by fd or as /proc/self/fd/N. */
static napi_value memfd_sealed(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; char name[64]; size_t nlen; void *data; size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok
      || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) { napi_throw_type_error(env, "EINVAL", "memfdSealed(name, buffer)"); return NULL; }
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, (const char *)data + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { int e = n < 0 ? errno : EIO; close(fd); return throw_errno(env, "write", e); }
    off += (size_t)n;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK) < 0) { int e = errno; close(fd); return throw_errno(env, "fcntl(F_ADD_SEALS)", e); }
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}
/* ---- netlink (NETLINK_ROUTE): host networking without an `ip` process per step ----
 * The messages are built and parsed in TypeScript (src/net/netlink.ts, pure and tested);
 * these two functions only own the socket and the request/reply exchange. */
#include <sys/time.h>
#include <linux/netlink.h>

/* netlinkOpen() -> fd: an AF_NETLINK NETLINK_ROUTE socket, O_CLOEXEC, 5 s receive timeout. */
static napi_value netlink_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, "socket(AF_NETLINK)", errno);
  struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
  int one = 1;
  struct sockaddr_nl sa; memset(&sa, 0, sizeof sa); sa.nl_family = AF_NETLINK;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0
      || setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) < 0
      || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno; close(fd); return throw_errno(env, "netlink socket setup", e);
  }
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}

/* netlinkTalk(fd, request: Uint8Array) -> Buffer: sends one request (one nlmsghdr; the caller
 * sets NLM_F_ACK, or NLM_F_DUMP) to the kernel and returns every reply message carrying its
 * sequence number, up to and including the NLMSG_ERROR (ack or error) or NLMSG_DONE that ends it.
 * Messages of other sequence numbers (a reply left by an earlier, interrupted request) are dropped. */
static napi_value netlink_talk(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; int32_t fd;
  void *req = NULL; size_t rlen = 0; napi_typedarray_type tt; napi_value ab; size_t off;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_int(env, argv[0], &fd)
      || napi_get_typedarray_info(env, argv[1], &tt, &rlen, &req, &ab, &off) != napi_ok
      || tt != napi_uint8_array || rlen < sizeof(struct nlmsghdr)) {
    napi_throw_type_error(env, "EINVAL", "netlinkTalk(fd, Uint8Array holding one netlink message)");
    return NULL;
  }
  uint32_t seq = ((struct nlmsghdr *)req)->nlmsg_seq;
  struct sockaddr_nl kernel; memset(&kernel, 0, sizeof kernel); kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do { n = sendto(fd, req, rlen, 0, (struct sockaddr *)&kernel, sizeof kernel); } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "netlink sendto", errno);
  size_t cap = 1 << 16, used = 0;
  char *out = malloc(cap);
  char *buf = malloc(1 << 16);
  if (out == NULL || buf == NULL) { free(out); free(buf); return throw_errno(env, "netlinkTalk", ENOMEM); }
  int done = 0;
  while (!done) {
    do { n = recv(fd, buf, 1 << 16, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) { int e = errno; free(out); free(buf); return throw_errno(env, "netlink recv", e); }
    int len = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      size_t aligned = NLMSG_ALIGN(h->nlmsg_len);
      if (used + aligned > cap) {
        while (used + aligned > cap) cap *= 2;
        char *grown = realloc(out, cap);
        if (grown == NULL) { free(out); free(buf); return throw_errno(env, "netlinkTalk", ENOMEM); }
        out = grown;
      }
      memset(out + used, 0, aligned);
      memcpy(out + used, h, h->nlmsg_len);
      used += aligned;
      if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) { done = 1; break; }
    }
  }
  napi_value r; void *copy;
  napi_create_buffer_copy(env, used, out, &copy, &r);
  free(out); free(buf);
  return r;
}
static void register_daemon_calls(napi_env env, napi_value exports); /* defined at the end (daemon) */

static napi_value init(napi_env env, napi_value exports) {
  register_daemon_calls(env, exports);
  void warden_policy_register(napi_env env, napi_value exports); /* openat2, defined at the end (policy) */
  warden_policy_register(env, exports);
  { void warden_nss_register(napi_env env, napi_value exports); warden_nss_register(env, exports); } /* NSS lookups, defined at the end (policy) */
  { void warden_mount_register(napi_env env, napi_value exports); warden_mount_register(env, exports); } /* idmapped mounts (warden_mount.c) */
  { void warden_image_register(napi_env env, napi_value exports); warden_image_register(env, exports); } /* the prober's opens (warden_image.c) */
  { void warden_spawn_register(napi_env env, napi_value exports); warden_spawn_register(env, exports); } /* the jail launcher's spawn (warden_spawn.c) */
  napi_property_descriptor props[] = {
    { "openTap", NULL, open_tap, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendFds", NULL, send_fds, NULL, NULL, NULL, napi_enumerable, NULL },
    { "recvFds", NULL, recv_fds, NULL, NULL, NULL, napi_enumerable, NULL },
    { "socketpair", NULL, socket_pair, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pipe", NULL, make_pipe, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pidfdOpen", NULL, pidfd_open_, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pidfdSignal", NULL, pidfd_signal, NULL, NULL, NULL, napi_enumerable, NULL },
    { "tapIfName", NULL, tap_if_name, NULL, NULL, NULL, napi_enumerable, NULL },
    { "closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "memfdSealed", NULL, memfd_sealed, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkOpen", NULL, netlink_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkTalk", NULL, netlink_talk, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/* ---- daemon: peer credentials and pidfd watching (self-contained; registered by init) ---- */
#include <uv.h>

/* peerCred(fd): SO_PEERCRED of a connected unix socket: {pid, uid, gid} at connect(2) time. */
static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_int(env, argv[0], &fd)) { napi_throw_type_error(env, "EINVAL", "peerCred(fd)"); return NULL; }
  struct ucred cred; socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, "getsockopt SO_PEERCRED", errno);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, (int32_t)cred.pid, &v); napi_set_named_property(env, out, "pid", v);
  napi_create_uint32(env, (uint32_t)cred.uid, &v); napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, (uint32_t)cred.gid, &v); napi_set_named_property(env, out, "gid", v);
  return out;
}

/* A one-shot readability watch on an fd (a pidfd turns readable when its process exits). */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int active;
  int owners; /* the uv handle until closed, and the JS handle until collected */
} fd_watch;

static void watch_release(fd_watch *w) { if (--w->owners == 0) free(w); }
static void watch_freed(uv_handle_t *h) { watch_release(h->data); }

static void watch_stop(fd_watch *w) {
  if (!w->active) return;
  w->active = 0;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->cb);
  napi_async_destroy(w->env, w->ctx);
  uv_close((uv_handle_t *)&w->poll, watch_freed);
}

static void watch_fired(uv_poll_t *p, int status, int events) {
  (void)status; (void)events;
  fd_watch *w = p->data;
  if (!w->active) return;
  napi_env env = w->env;
  napi_handle_scope scope; napi_open_handle_scope(env, &scope);
  napi_value cb, recv; napi_get_reference_value(env, w->cb, &cb); napi_get_global(env, &recv); /* make_callback wants an object */
  napi_async_context ctx = w->ctx;
  w->ctx = NULL;
  w->active = 0; /* the callback runs once; the handle goes now */
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->cb);
  uv_close((uv_handle_t *)&w->poll, watch_freed);
  napi_make_callback(env, ctx, recv, cb, 0, NULL, NULL);
  napi_async_destroy(env, ctx);
  napi_close_handle_scope(env, scope);
}

static void watch_finalize(napi_env env, void *data, void *hint) { (void)env; (void)hint; watch_release(data); }

/* watchReadable(fd, cb): calls cb() once, on the event loop, when fd turns readable; returns a handle for unwatch. */
static napi_value watch_readable(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_int(env, argv[0], &fd)) { napi_throw_type_error(env, "EINVAL", "watchReadable(fd, cb)"); return NULL; }
  uv_loop_t *loop; napi_get_uv_event_loop(env, &loop);
  fd_watch *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", ENOMEM);
  w->env = env; w->poll.data = w; w->owners = 2;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) { free(w); return throw_errno(env, "uv_poll_init", -r); }
  napi_create_reference(env, argv[1], 1, &w->cb);
  napi_value name; napi_create_string_utf8(env, "warden.watchReadable", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->ctx);
  w->active = 1;
  r = uv_poll_start(&w->poll, UV_READABLE, watch_fired);
  if (r < 0) {
    w->active = 0;
    napi_delete_reference(env, w->cb);
    napi_async_destroy(env, w->ctx);
    w->owners = 1;
    uv_close((uv_handle_t *)&w->poll, watch_freed);
    return throw_errno(env, "uv_poll_start", -r);
  }
  napi_value handle; napi_create_external(env, w, watch_finalize, NULL, &handle);
  return handle;
}

/* unwatch(handle): stops a watch that has not fired; a no-op after it fired. */
static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) { napi_throw_type_error(env, "EINVAL", "unwatch(handle)"); return NULL; }
  watch_stop(data);
  return NULL;
}

static void register_daemon_calls(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_enumerable, NULL },
    { "watchReadable", NULL, watch_readable, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

/* ---- policy (issue 18): openat2 for the image prober's check-before-open ----
 * openat2(dirfd, path, flags, resolve) -> fd. The caller passes O_PATH|O_NOFOLLOW and
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS: the kernel then resolves exactly
 * the checked name beneath the allowed directory's fd, through no symlink. O_CLOEXEC is
 * always added. Throws with the errno name (ENOSYS on kernels before 5.6: the caller falls
 * back to open(2) and a recheck through /proc/self/fd). Self-contained: its own includes. */
#include <linux/openat2.h>
#include <sys/syscall.h>

/* The errnos the caller tells apart (ELOOP/EXDEV: a symlink or an escape on the way), else the shared table's name. */
static napi_value policy_throw(napi_env env, int e) {
  const char *code = e == ELOOP ? "ELOOP" : e == EXDEV ? "EXDEV" : e == ENOENT ? "ENOENT" : e == ENOTDIR ? "ENOTDIR"
    : e == EACCES ? "EACCES" : e == EAGAIN ? "EAGAIN" : errno_code(e);
  char msg[256];
  snprintf(msg, sizeof msg, "openat2: %s", strerror(e));
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value policy_openat2(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4]; int32_t dirfd, flags, resolve; char path[4096]; size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || !get_int(env, argv[0], &dirfd) || !get_int(env, argv[2], &flags) || !get_int(env, argv[3], &resolve)
      || napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
    napi_throw_type_error(env, "EINVAL", "openat2(dirfd, path, flags, resolve)");
    return NULL;
  }
  struct open_how how; memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(uint32_t)flags | O_CLOEXEC;
  how.resolve = (uint64_t)(uint32_t)resolve;
  long fd;
  do { fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
  if (fd < 0) return policy_throw(env, errno);
  napi_value r; napi_create_int32(env, (int32_t)fd, &r);
  return r;
}

void warden_policy_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openat2", NULL, policy_openat2, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

/* ---- policy (issue 18): NSS lookups for the uid-lease host check ----
 * nssNames(ids) -> Promise<{ users, groups }>: for each id, getpwuid_r's and getgrgid_r's
 * entry name, null when there is none, or "?ERRNO" when the lookup itself failed (the caller
 * counts that as taken). Runs on the libuv thread pool: a slow NSS source (LDAP, sssd) never
 * blocks the event loop. Replaces two getent processes per window. Self-contained. */
#include <pwd.h>
#include <grp.h>

#define NSS_MAX_IDS 4096
typedef struct { napi_async_work work; napi_deferred deferred; uint32_t n; uint32_t ids[NSS_MAX_IDS]; char *users[NSS_MAX_IDS]; char *groups[NSS_MAX_IDS]; } nss_job;

static char *nss_err(int e) { char *s = malloc(32); if (s) snprintf(s, 32, "?%s", errno_code(e)); return s; }

static void nss_execute(napi_env env, void *data) {
  (void)env;
  nss_job *j = data;
  size_t size = 16384; char *buf = malloc(size);
  for (uint32_t i = 0; i < j->n; i++) {
    for (int kind = 0; kind < 2; kind++) {
      char **out = kind == 0 ? &j->users[i] : &j->groups[i];
      for (;;) {
        int r; const char *name = NULL;
        if (buf == NULL) { *out = nss_err(ENOMEM); break; }
        if (kind == 0) { struct passwd pw, *res = NULL; r = getpwuid_r(j->ids[i], &pw, buf, size, &res); if (r == 0 && res) name = res->pw_name; }
        else { struct group gr, *res = NULL; r = getgrgid_r(j->ids[i], &gr, buf, size, &res); if (r == 0 && res) name = res->gr_name; }
        if (r == ERANGE && size < (1u << 24)) { size *= 2; free(buf); buf = malloc(size); continue; }
        if (r == 0) *out = name ? strdup(name) : NULL;
        else if (r == ENOENT || r == ESRCH || r == EBADF || r == EPERM) *out = NULL; /* "not found" per getpwuid_r(3) */
        else *out = nss_err(r);
        break;
      }
    }
  }
  free(buf);
}

static void nss_complete(napi_env env, napi_status status, void *data) {
  nss_job *j = data;
  napi_value result, users, groups, nul;
  napi_get_null(env, &nul);
  napi_create_object(env, &result);
  napi_create_array_with_length(env, j->n, &users);
  napi_create_array_with_length(env, j->n, &groups);
  for (uint32_t i = 0; i < j->n; i++) {
    napi_value u = nul, g = nul;
    if (j->users[i]) napi_create_string_utf8(env, j->users[i], NAPI_AUTO_LENGTH, &u);
    if (j->groups[i]) napi_create_string_utf8(env, j->groups[i], NAPI_AUTO_LENGTH, &g);
    napi_set_element(env, users, i, u); napi_set_element(env, groups, i, g);
    free(j->users[i]); free(j->groups[i]);
  }
  napi_set_named_property(env, result, "users", users);
  napi_set_named_property(env, result, "groups", groups);
  if (status == napi_ok) napi_resolve_deferred(env, j->deferred, result);
  else { napi_value msg, err; napi_create_string_utf8(env, "nssNames: the lookup was cancelled", NAPI_AUTO_LENGTH, &msg); napi_create_error(env, NULL, msg, &err); napi_reject_deferred(env, j->deferred, err); }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value nss_names(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; bool isArray = false; uint32_t n = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_is_array(env, argv[0], &isArray) != napi_ok || !isArray || napi_get_array_length(env, argv[0], &n) != napi_ok || n > NSS_MAX_IDS) {
    napi_throw_type_error(env, "EINVAL", "nssNames(ids: number[] of at most 4096)");
    return NULL;
  }
  nss_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, "nssNames", ENOMEM);
  j->n = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v; int64_t id = -1;
    napi_get_element(env, argv[0], i, &v);
    if (napi_get_value_int64(env, v, &id) != napi_ok || id < 0 || id > 0xfffffffeLL) { free(j); napi_throw_type_error(env, "EINVAL", "nssNames: ids are 0..4294967294"); return NULL; }
    j->ids[i] = (uint32_t)id;
  }
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "warden:nssNames", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, nss_execute, nss_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

/* procIds() -> Promise<Uint32Array>: for every process in /proc, 9 numbers: pid, then the
 * Uid: line's real, effective, saved, filesystem uids, then the Gid: line's four gids (a
 * process that vanished mid-scan is skipped, and so is a dead one: a zombie whose every
 * thread has exited, which runs nothing and holds no resource under its ids; a zombie
 * leader whose other threads still run counts them in Threads: and is kept). One pass on
 * the thread pool, no fs round trips. */
#include <dirent.h>
typedef struct { napi_async_work work; napi_deferred deferred; uint32_t *rows; size_t n, cap; int err; } proc_job;

static int proc_line(const char *text, const char *key, uint32_t out[4]) {
  const char *p = strstr(text, key);
  if (p == NULL) return 0;
  p += strlen(key);
  for (int i = 0; i < 4; i++) { char *end; unsigned long v = strtoul(p, &end, 10); if (end == p) return 0; out[i] = (uint32_t)v; p = end; }
  return 1;
}

/* State Z (zombie) or X (dead) with no thread left running (Threads: counts the zombie leader itself). */
static int proc_dead(const char *text) {
  const char *st = strstr(text, "\nState:");
  if (st == NULL) return 0;
  st += strlen("\nState:");
  while (*st == ' ' || *st == '\t') st++;
  if (*st != 'Z' && *st != 'X') return 0;
  const char *th = strstr(text, "\nThreads:");
  return th != NULL && strtoul(th + strlen("\nThreads:"), NULL, 10) <= 1;
}

static void proc_scan(proc_job *j) {
  DIR *d = opendir("/proc");
  if (d == NULL) { j->err = errno; return; }
  struct dirent *e; char path[64]; char buf[8192];
  while ((e = readdir(d)) != NULL) {
    char *end; unsigned long pid = strtoul(e->d_name, &end, 10);
    if (*e->d_name < '0' || *e->d_name > '9' || *end != '\0') continue;
    snprintf(path, sizeof path, "/proc/%lu/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = '\0';
    if (proc_dead(buf)) continue;
    uint32_t row[9]; row[0] = (uint32_t)pid;
    if (!proc_line(buf, "\nUid:", row + 1) || !proc_line(buf, "\nGid:", row + 5)) continue;
    if (j->n + 9 > j->cap) { size_t cap = j->cap ? j->cap * 2 : 9 * 512; uint32_t *r = realloc(j->rows, cap * sizeof *r); if (r == NULL) { j->err = ENOMEM; break; } j->rows = r; j->cap = cap; }
    memcpy(j->rows + j->n, row, sizeof row); j->n += 9;
  }
  closedir(d);
}

static void proc_execute(napi_env env, void *data) { (void)env; proc_scan(data); }

/* The rows as a Uint32Array (copied). */
static napi_value proc_rows(napi_env env, const proc_job *j) {
  napi_value ab, arr; void *mem;
  napi_create_arraybuffer(env, j->n * sizeof(uint32_t), &mem, &ab);
  if (j->n) memcpy(mem, j->rows, j->n * sizeof(uint32_t));
  napi_create_typedarray(env, napi_uint32_array, j->n, ab, 0, &arr);
  return arr;
}

static void proc_complete(napi_env env, napi_status status, void *data) {
  proc_job *j = data;
  if (status != napi_ok || j->err != 0) {
    napi_value msg, code, err;
    napi_create_string_utf8(env, status != napi_ok ? "procIds: cancelled" : strerror(j->err), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, status != napi_ok ? "ECANCELED" : errno_code(j->err), NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else {
    napi_resolve_deferred(env, j->deferred, proc_rows(env, j));
  }
  napi_delete_async_work(env, j->work);
  free(j->rows); free(j);
}

static napi_value proc_ids(napi_env env, napi_callback_info info) {
  (void)info;
  proc_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, "procIds", ENOMEM);
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "warden:procIds", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, proc_execute, proc_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

/* procIdsSync(max) -> Uint32Array | null: procIds on the calling thread, or null (nothing read)
 * when /proc lists more than `max` processes. A scan costs ~3 us a process, less than a
 * thread-pool round trip on a busy host for the few hundred processes a host usually has;
 * the caller keeps the pool for a larger host, where the scan would hold its event loop. */
static napi_value proc_ids_sync(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t max = 0; napi_value result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_int(env, argv[0], &max) || max < 0) { napi_throw_type_error(env, "EINVAL", "procIdsSync(max: number)"); return NULL; }
  DIR *d = opendir("/proc");
  if (d == NULL) return throw_errno(env, "procIdsSync", errno);
  int count = 0; struct dirent *e;
  while ((e = readdir(d)) != NULL && count <= max) if (*e->d_name >= '0' && *e->d_name <= '9') count++;
  closedir(d);
  if (count > max) { napi_get_null(env, &result); return result; }
  proc_job j; memset(&j, 0, sizeof j);
  proc_scan(&j);
  if (j.err != 0) { free(j.rows); return throw_errno(env, "procIdsSync", j.err); }
  result = proc_rows(env, &j);
  free(j.rows);
  return result;
}

/* renameExchange(a, b): renameat2(RENAME_EXCHANGE), both names must exist; throws the errno
 * (EINVAL where the filesystem cannot exchange). A record store replaces its file by exchanging
 * the new one in and unlinking the old: on ext4 a rename over an existing file first starts
 * writeback of the new file's data (auto_da_alloc, ~0.5-3 ms here), an exchange does not. */
static napi_value rename_exchange(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; char a[4096], b[4096]; size_t la, lb;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], a, sizeof a, &la) != napi_ok || napi_get_value_string_utf8(env, argv[1], b, sizeof b, &lb) != napi_ok
      || la == 0 || lb == 0 || la >= sizeof a - 1 || lb >= sizeof b - 1) {
    napi_throw_type_error(env, "EINVAL", "renameExchange(a: string, b: string)"); return NULL;
  }
  if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) != 0) return throw_errno(env, "renameExchange", errno);
  return NULL;
}

void warden_nss_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "nssNames", NULL, nss_names, NULL, NULL, NULL, napi_enumerable, NULL },
    { "procIds", NULL, proc_ids, NULL, NULL, NULL, napi_enumerable, NULL },
    { "procIdsSync", NULL, proc_ids_sync, NULL, NULL, NULL, napi_enumerable, NULL },
    { "renameExchange", NULL, rename_exchange, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
