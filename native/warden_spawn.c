/* warden_spawn: the jail launcher's spawn without a fork of the manager. posix_spawn(3) (glibc:
 * clone(CLONE_VM|CLONE_VFORK), no copy of the manager's page tables, exec errors reported
 * back) with a chosen fd layout, a new session, default signal dispositions and an empty
 * environment; the child's exit is watched by a pidfd on the event loop (unref'd) and reaped
 * with waitid(P_PIDFD), so only this child is ever reaped. */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define MAX_ARGS 4096
#define MAX_CHILD_FDS 1024

typedef struct { uv_poll_t poll; napi_env env; napi_ref cb; napi_async_context ctx; int pidfd; } exit_watch;

static napi_value spawn_throw(napi_env env, const char *what, int e) {
  napi_value msg, code, err;
  char text[256]; snprintf(text, sizeof text, "%s: %s", what, strerror(e));
  const char *name = e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : e == ENOEXEC ? "ENOEXEC" : e == EMFILE ? "EMFILE" : e == ENOMEM ? "ENOMEM"
    : e == EAGAIN ? "EAGAIN" : e == EBADF ? "EBADF" : e == ENOSYS ? "ENOSYS" : e == E2BIG ? "E2BIG" : e == EPERM ? "EPERM" : "EIO";
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_throw(env, err);
  return NULL;
}

static void watch_closed(uv_handle_t *h) { exit_watch *w = h->data; close(w->pidfd); free(w); }

static void exit_fired(uv_poll_t *p, int status, int events) {
  (void)status; (void)events;
  exit_watch *w = p->data;
  siginfo_t si; memset(&si, 0, sizeof si);
  int r = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG);
  if (r != 0 && errno == EINTR) return;
  if (r == 0 && si.si_pid == 0) return; /* not exited yet */
  if (r != 0) si.si_pid = 0; /* reaped by someone else (ECHILD): no status */
  napi_env env = w->env;
  napi_handle_scope scope; napi_open_handle_scope(env, &scope);
  napi_value cb, recv, args[2];
  napi_get_reference_value(env, w->cb, &cb); napi_get_global(env, &recv);
  if (si.si_pid != 0 && si.si_code == CLD_EXITED) { napi_create_int32(env, si.si_status, &args[0]); napi_get_null(env, &args[1]); }
  else if (si.si_pid != 0) { napi_get_null(env, &args[0]); napi_create_int32(env, si.si_status, &args[1]); }
  else { napi_get_null(env, &args[0]); napi_get_null(env, &args[1]); } /* reaped by someone else: no status */
  napi_async_context ctx = w->ctx;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->cb);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
  napi_make_callback(env, ctx, recv, cb, 2, args, NULL);
  napi_async_destroy(env, ctx);
  napi_close_handle_scope(env, scope);
}

/* spawnDetached(file, argv, fds, onExit(code, signo)) -> pid: fds[i] becomes the child's fd i
 * (every other fd of this process is close-on-exec); throws the errno name (ENOENT, EACCES...
 * of the exec too). onExit runs once, on the event loop, after the child was reaped; the watch
 * does not keep the loop alive. */
static napi_value spawn_detached(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char file[4096]; size_t flen; uint32_t nargs = 0, nfds = 0; napi_valuetype t;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], file, sizeof file, &flen) != napi_ok || flen == 0 || flen >= sizeof file - 1
      || napi_get_array_length(env, argv[1], &nargs) != napi_ok || nargs == 0 || nargs > MAX_ARGS
      || napi_get_array_length(env, argv[2], &nfds) != napi_ok || nfds > MAX_CHILD_FDS
      || napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "spawnDetached(file: string, argv: string[], fds: number[], onExit: function)"); return NULL;
  }
  char **args = calloc(nargs + 1, sizeof *args);
  int *dups = malloc((nfds + 1) * sizeof *dups);
  napi_value result = NULL; int e = 0; const char *what = "spawnDetached";
  if (args == NULL || dups == NULL) { e = ENOMEM; goto out; }
  for (uint32_t i = 0; i < nfds; i++) dups[i] = -1;
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value v; size_t len;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) { e = EINVAL; goto out; }
    if ((args[i] = malloc(len + 1)) == NULL) { e = ENOMEM; goto out; }
    napi_get_value_string_utf8(env, v, args[i], len + 1, &len);
  }
  /* Sources first copied above every target number, so no dup2 overwrites a later source. */
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v; int32_t fd;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) { e = EINVAL; goto out; }
    if ((dups[i] = fcntl(fd, F_DUPFD_CLOEXEC, (int)nfds)) < 0) { e = errno; what = "dup of a child fd"; goto out; }
  }
  posix_spawn_file_actions_t fa; posix_spawnattr_t at; sigset_t all, none;
  posix_spawn_file_actions_init(&fa); posix_spawnattr_init(&at);
  for (uint32_t i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(&fa, dups[i], (int)i); /* dup2 clears close-on-exec on the target */
  sigfillset(&all); sigemptyset(&none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  char *envp[] = { NULL };
  pid_t pid = 0;
  e = posix_spawn(&pid, file, &fa, &at, args, envp);
  posix_spawn_file_actions_destroy(&fa); posix_spawnattr_destroy(&at);
  if (e != 0) { what = "posix_spawn"; goto out; }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  exit_watch *w = pidfd < 0 ? NULL : calloc(1, sizeof *w);
  uv_loop_t *loop; napi_get_uv_event_loop(env, &loop);
  if (w == NULL || uv_poll_init(loop, &w->poll, pidfd) != 0) {
    e = pidfd < 0 ? errno : ENOMEM; what = "pidfd_open of the spawned child";
    kill(pid, SIGKILL); waitpid(pid, NULL, 0); if (pidfd >= 0) close(pidfd); free(w); goto out;
  }
  w->env = env; w->pidfd = pidfd; w->poll.data = w;
  napi_create_reference(env, argv[3], 1, &w->cb);
  napi_value name; napi_create_string_utf8(env, "warden.spawnDetached", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->ctx);
  uv_poll_start(&w->poll, UV_READABLE, exit_fired);
  uv_unref((uv_handle_t *)&w->poll);
  napi_create_int32(env, pid, &result);
out:
  if (dups != NULL) for (uint32_t i = 0; i < nfds; i++) if (dups[i] >= 0) close(dups[i]);
  if (args != NULL) for (uint32_t i = 0; i < nargs; i++) free(args[i]);
  free(args); free(dups);
  if (e != 0) return spawn_throw(env, what, e);
  return result;
}

void warden_spawn_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = { { "spawnDetached", NULL, spawn_detached, NULL, NULL, NULL, napi_enumerable, NULL } };
  napi_define_properties(env, exports, 1, props);
}
