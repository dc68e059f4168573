/* warden_image.c: the image prober's check-before-open in few crossings (issue 16).
 * src/image/open.ts takes a name without symlinks on this road: imageLstat (identity, nothing
 * opened), its guard in JS, imageHold (openat2 O_PATH through no symlink + fstat of the held
 * fd), imageReopen (open /proc/self/fd/N with the access mode, close the O_PATH fd, fstat the
 * new fd). Each fills a Float64Array [dev, ino, mode, size, rdev] as Node's Stats would hold
 * them (doubles), without building a Stats object and its four Dates per call. Errors throw
 * with the errno's name as `code`, as Node's fs does. Registered from init (warden_native.c). */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>

static napi_value image_throw(napi_env env, const char *what, int e) {
  const char *code = strerrorname_np(e);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, code != NULL ? code : "EIO", msg);
  return NULL;
}

/* The caller's Float64Array of at least 5 slots. */
static double *stat_slots(napi_env env, napi_value v) {
  napi_typedarray_type type; size_t len; void *data; napi_value ab; size_t off;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != napi_float64_array || len < 5) return NULL;
  return data;
}

static void put_stat(double *o, const struct stat *st) {
  o[0] = (double)st->st_dev; o[1] = (double)st->st_ino; o[2] = (double)st->st_mode;
  o[3] = (double)st->st_size; o[4] = (double)st->st_rdev;
}

static napi_value fd_value(napi_env env, int fd) {
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}

/* imageLstat(path, out): lstat(2); nothing is opened. */
static napi_value image_lstat(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; char path[4096]; size_t len = 0; double *out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1
      || (out = stat_slots(env, argv[1])) == NULL) {
    napi_throw_type_error(env, "EINVAL", "imageLstat(path, Float64Array(5))");
    return NULL;
  }
  struct stat st;
  if (lstat(path, &st) != 0) return image_throw(env, "lstat", errno);
  put_stat(out, &st);
  napi_value u; napi_get_undefined(env, &u);
  return u;
}

/* imageHold(path, resolve, out) -> fd: openat2(AT_FDCWD, path, O_PATH|O_NOFOLLOW|O_CLOEXEC, resolve), then fstat of that fd. */
static napi_value image_hold(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; char path[4096]; size_t len = 0; int32_t resolve; double *out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1
      || napi_get_value_int32(env, argv[1], &resolve) != napi_ok || (out = stat_slots(env, argv[2])) == NULL) {
    napi_throw_type_error(env, "EINVAL", "imageHold(path, resolve, Float64Array(5))");
    return NULL;
  }
  struct open_how how; memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = (uint64_t)(uint32_t)resolve;
  long fd;
  do { fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
  if (fd < 0) return image_throw(env, "openat2", errno);
  struct stat st;
  if (fstat((int)fd, &st) != 0) { int e = errno; close((int)fd); return image_throw(env, "fstat", e); }
  put_stat(out, &st);
  return fd_value(env, (int)fd);
}

/* imageReopen(pathFd, flags, out) -> fd: open("/proc/self/fd/N", flags|O_NONBLOCK|O_NOCTTY|O_CLOEXEC); pathFd is
 * closed whatever happens; then fstat of the new fd. */
static napi_value image_reopen(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; int32_t pfd, flags; double *out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &pfd) != napi_ok || napi_get_value_int32(env, argv[1], &flags) != napi_ok
      || (out = stat_slots(env, argv[2])) == NULL) {
    napi_throw_type_error(env, "EINVAL", "imageReopen(pathFd, flags, Float64Array(5))");
    return NULL;
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
  int fd;
  do { fd = open(proc, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
  int e = errno;
  close(pfd);
  if (fd < 0) return image_throw(env, "open", e);
  struct stat st;
  if (fstat(fd, &st) != 0) { e = errno; close(fd); return image_throw(env, "fstat", e); }
  put_stat(out, &st);
  return fd_value(env, fd);
}

void warden_image_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "imageLstat", NULL, image_lstat, NULL, NULL, NULL, napi_enumerable, NULL },
    { "imageHold", NULL, image_hold, NULL, NULL, NULL, napi_enumerable, NULL },
    { "imageReopen", NULL, image_reopen, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
