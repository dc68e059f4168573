/* warden_mount: idmapped bind mounts (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount)
 * and a pre-connected listening unix socket, for helpers that serve a host directory from a
 * uid of their own (virtiofsd). Registered by warden_native.c's init. Errors throw with the
 * errno name as code. */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define W_OPEN_TREE_CLONE 1
#define W_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define W_MOUNT_ATTR_RDONLY 0x00000001
#define W_MOUNT_ATTR_NOSUID 0x00000002
#define W_MOUNT_ATTR_NODEV 0x00000004
#define W_MOUNT_ATTR_IDMAP 0x00100000

struct w_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

static napi_value throw_err(napi_env env, const char *what, int e) {
  char msg[512], code[16];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  switch (e) {
    case EPERM: strcpy(code, "EPERM"); break; case ENOENT: strcpy(code, "ENOENT"); break;
    case EINVAL: strcpy(code, "EINVAL"); break; case EACCES: strcpy(code, "EACCES"); break;
    case ENOSYS: strcpy(code, "ENOSYS"); break; case ENOTDIR: strcpy(code, "ENOTDIR"); break;
    case EBUSY: strcpy(code, "EBUSY"); break; case EEXIST: strcpy(code, "EEXIST"); break;
    default: snprintf(code, sizeof code, "E%d", e);
  }
  napi_throw_error(env, code, msg);
  return NULL;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A user namespace mapping host uid `from` to `to` (and gid likewise), as an fd: a child
 * unshares it and waits; we write its maps, open its ns file, and let it go. */
static int idmap_userns(unsigned from_uid, unsigned to_uid, unsigned from_gid, unsigned to_gid) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return -1;
  if (pipe2(go, O_CLOEXEC) < 0) { close(ready[0]); close(ready[1]); return -1; }
  pid_t pid = fork();
  if (pid < 0) { int e = errno; close(ready[0]); close(ready[1]); close(go[0]); close(go[1]); errno = e; return -1; }
  if (pid == 0) {
    close(ready[0]); close(go[1]); /* or our own copy of go[1] keeps the read below from ever seeing EOF */
    char c = unshare(CLONE_NEWUSER) == 0 ? 'k' : 'x';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    (void)read(go[0], &c, 1);
    _exit(0);
  }
  close(ready[1]); close(go[0]);
  char c = 0, path[64], map[64];
  int fd = -1, e = 0;
  if (read(ready[0], &c, 1) != 1 || c != 'k') { e = EPERM; goto out; }
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  snprintf(map, sizeof map, "%u %u 1\n", from_uid, to_uid);
  if (write_file(path, map) < 0) { e = errno; goto out; }
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  snprintf(map, sizeof map, "%u %u 1\n", from_gid, to_gid);
  if (write_file(path, map) < 0) { e = errno; goto out; }
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) e = errno;
out:
  close(ready[0]); close(go[1]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  errno = e;
  return fd;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) { return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1; }

/* idmapMount(source, target, fromUid, toUid, fromGid, toGid, readonly): a clone of the mount
 * at `source` (not its submounts), where files of fromUid/fromGid appear as toUid/toGid,
 * nosuid, nodev (and read-only when asked), attached at `target`. `source` is reached through
 * no symlink and must belong to fromUid when it is opened. */
static napi_value idmap_mount(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char source[4096], target[4096];
  uint32_t ids[4];
  bool ro = false;
  if (argc < 7 || napi_get_value_string_utf8(env, argv[0], source, sizeof source, NULL) != napi_ok
      || napi_get_value_string_utf8(env, argv[1], target, sizeof target, NULL) != napi_ok
      || get_u32(env, argv[2], &ids[0]) || get_u32(env, argv[3], &ids[1]) || get_u32(env, argv[4], &ids[2]) || get_u32(env, argv[5], &ids[3])
      || napi_get_value_bool(env, argv[6], &ro) != napi_ok) {
    napi_throw_type_error(env, NULL, "idmapMount(source, target, fromUid, toUid, fromGid, toGid, readonly)");
    return NULL;
  }
  int ns = idmap_userns(ids[0], ids[1], ids[2], ids[3]);
  if (ns < 0) return throw_err(env, "idmapMount: user namespace for the idmapping", errno);
  /* The source is opened once through no symlink at all (the caller passes its canonical path) and
   * must still belong to fromUid, whose files the clone maps: a path swapped since it was checked
   * cannot bring another owner's tree (or one reached only through a 0700 parent) into the jail.
   * The clone is then made of that very directory (AT_EMPTY_PATH), not of the name again. */
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int dir;
  do { dir = (int)syscall(SYS_openat2, AT_FDCWD, source, &how, sizeof how); } while (dir < 0 && errno == EINTR);
  if (dir < 0) { int e = errno; close(ns); return throw_err(env, "idmapMount: opening the source through no symlink", e); }
  struct stat st;
  if (fstat(dir, &st) < 0) { int e = errno; close(dir); close(ns); return throw_err(env, "idmapMount: fstat of the source", e); }
  if (st.st_uid != ids[0]) { close(dir); close(ns); return throw_err(env, "idmapMount: the source no longer belongs to the uid it was checked for", EPERM); }
  int tree = (int)syscall(SYS_open_tree, dir, "", W_OPEN_TREE_CLONE | AT_EMPTY_PATH | O_CLOEXEC);
  close(dir);
  if (tree < 0) { int e = errno; close(ns); return throw_err(env, "idmapMount: open_tree", e); }
  struct w_mount_attr attr = { W_MOUNT_ATTR_IDMAP | W_MOUNT_ATTR_NOSUID | W_MOUNT_ATTR_NODEV | (ro ? W_MOUNT_ATTR_RDONLY : 0), 0, 0, (uint64_t)ns };
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    int e = errno; close(ns); close(tree); return throw_err(env, "idmapMount: mount_setattr", e);
  }
  close(ns);
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, W_MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    int e = errno; close(tree); return throw_err(env, "idmapMount: move_mount", e);
  }
  close(tree);
  return NULL;
}

/* unmount(target): lazily detaches the mount at target; throws EINVAL when none is there. */
static napi_value unmount_(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char target[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], target, sizeof target, NULL) != napi_ok) {
    napi_throw_type_error(env, NULL, "unmount(target)");
    return NULL;
  }
  if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return throw_err(env, "umount2", errno);
  return NULL;
}

/* listenConnected(path) -> [listening fd, connected fd]: a unix stream socket bound at `path`
 * and listening, one connection already queued on it from the second fd, then the path
 * removed (nobody else can connect). For servers that insist on accept() (virtiofsd --fd). */
static napi_value listen_connected(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], a.sun_path, sizeof a.sun_path, &len) != napi_ok || len == 0 || len >= sizeof a.sun_path - 1) {
    napi_throw_type_error(env, NULL, "listenConnected(path): a path shorter than 107 bytes");
    return NULL;
  }
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) return throw_err(env, "socket", errno);
  int c = -1, e = 0;
  unlink(a.sun_path);
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0) { e = errno; goto fail; }
  c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0) { e = errno; goto fail; }
  unlink(a.sun_path);
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_int32(env, l, &v); napi_set_element(env, arr, 0, v);
  napi_create_int32(env, c, &v); napi_set_element(env, arr, 1, v);
  return arr;
fail:
  unlink(a.sun_path);
  close(l);
  if (c >= 0) close(c);
  return throw_err(env, "listenConnected", e);
}

void warden_mount_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "idmapMount", NULL, idmap_mount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unmount", NULL, unmount_, NULL, NULL, NULL, napi_enumerable, NULL },
    { "listenConnected", NULL, listen_connected, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
