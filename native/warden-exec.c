/*
 * warden-exec: the jailer's tiny exec helper, statically linked so it runs in any jail view.
 *
 *   warden-exec pre [--netns PATH] [--cgroup-procs FILE]... [--cgroup-tasks FILE]... -- PROGRAM ARGS...
 *     Runs as root outside the sandbox: joins a network namespace, writes its own pid
 *     into each cgroup.procs (so everything it execs starts inside the limits), or "0"
 *     into each cgroup v1 tasks file (moves this thread, which is the whole process: the
 *     helper has one thread), execs. A v1 tasks write of "0" moves the caller without the
 *     kernel's global threadgroup lock, whose write side waits for an RCU grace period
 *     (0-16 ms here) on every cgroup.procs write.
 *
 *   warden-exec inner --keep N [--gate FD] [--stderr-fd FD] [--rlimit NAME=VALUE]...
 *                     [--ll-ro PATH]... [--ll-rw PATH]... [--ll-required] -- PROGRAM ARGS...
 *     Runs as the jailed uid inside the sandbox, just before the program: says "r" (ready)
 *     on the gate socket, so the manager waits on an fd rather than polling for it, waits
 *     for the manager's "go" byte on the gate fd, moves the program's real stderr onto fd 2 (until
 *     then fd 2 carries setup errors to the manager), closes every fd above 2+N, sets
 *     rlimits, applies Landlock where the kernel has it, execs.
 *
 *   warden-exec abi      prints the kernel's Landlock ABI version (0 when absent).
 *
 * Exit statuses name the failed step: 120 usage, 121 netns, 122 cgroup, 123 gate,
 * 124 fds, 125 rlimit, 126 landlock, 127 exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_ITEMS 64

/* Landlock ABI (defined here: the build host's headers may predate the rights we mask in). */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REFER (1ULL << 13)
#define LL_FS_TRUNCATE (1ULL << 14)
#define LL_FS_IOCTL_DEV (1ULL << 15)
#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

struct ll_ruleset_attr { uint64_t handled_access_fs; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));

/* After the go, the gate socket stays open (close-on-exec): a failed step reports its status
 * byte on it, a successful exec closes it, so the manager learns which happened. */
static int report_fd = -1;

static void die(int status, const char *step, const char *what) {
  fprintf(stderr, "warden-exec: %s %s: %s\n", step, what ? what : "", strerror(errno));
  if (report_fd >= 0) { unsigned char b = (unsigned char)status; if (write(report_fd, &b, 1) < 0) { /* nothing more to do */ } }
  exit(status);
}

static void usage(const char *msg) {
  fprintf(stderr, "warden-exec: %s\n", msg);
  exit(120);
}

static int landlock_abi(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : (int)abi;
}

/* Every filesystem right the kernel's ABI knows, so the ruleset denies all that no rule allows. */
static uint64_t ll_handled(int abi) {
  uint64_t all = (1ULL << 13) - 1;
  if (abi >= 2) all |= LL_FS_REFER;
  if (abi >= 3) all |= LL_FS_TRUNCATE;
  if (abi >= 5) all |= LL_FS_IOCTL_DEV;
  return all;
}

static void ll_add(int ruleset, const char *path, uint64_t rights) {
  struct ll_path_beneath rule;
  struct stat st;
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) die(126, "landlock: open", path);
  if (fstat(fd, &st) < 0) die(126, "landlock: stat", path);
  if (!S_ISDIR(st.st_mode)) rights &= LL_FILE_RIGHTS;
  rule.allowed_access = rights;
  rule.parent_fd = fd;
  if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) < 0) die(126, "landlock: add rule", path);
  close(fd);
}

static void apply_landlock(char **ro, int nro, char **rw, int nrw, int required) {
  int abi = landlock_abi();
  if (abi == 0) {
    if (required) { errno = ENOSYS; die(126, "landlock:", "not supported by this kernel"); }
    return;
  }
  uint64_t handled = ll_handled(abi);
  struct ll_ruleset_attr attr = { handled };
  int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (ruleset < 0) die(126, "landlock: create ruleset", NULL);
  for (int i = 0; i < nro; i++) ll_add(ruleset, ro[i], handled & (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR));
  for (int i = 0; i < nrw; i++) ll_add(ruleset, rw[i], handled);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die(126, "landlock: no_new_privs", NULL);
  if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) die(126, "landlock: restrict self", NULL);
  close(ruleset);
}

static int parse_int(const char *s, long long min, long long max, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return -1;
  *out = v;
  return 0;
}

static void set_rlimit(const char *spec) {
  static const struct { const char *name; int resource; } names[] = {
    { "nofile", RLIMIT_NOFILE }, { "fsize", RLIMIT_FSIZE }, { "core", RLIMIT_CORE },
    { "nproc", RLIMIT_NPROC }, { "memlock", RLIMIT_MEMLOCK },
  };
  const char *eq = strchr(spec, '=');
  long long v;
  if (!eq || parse_int(eq + 1, 0, LLONG_MAX, &v) < 0) usage("bad --rlimit (NAME=VALUE)");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strlen(names[i].name) == (size_t)(eq - spec) && strncmp(spec, names[i].name, eq - spec) == 0) {
      struct rlimit rl = { (rlim_t)v, (rlim_t)v };
      if (setrlimit(names[i].resource, &rl) < 0) die(125, "rlimit", spec);
      return;
    }
  }
  usage("unknown --rlimit name");
}

static void close_between(unsigned first, unsigned last) {
  if (first > last) return;
  if (syscall(SYS_close_range, first, last, 0) == 0) return;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die(124, "close fds", NULL);
  for (unsigned long fd = first; fd <= last && fd < rl.rlim_cur && fd < 1048576; fd++) close((int)fd);
}

/* Everything above the allowlist goes, except the report fd, which closes itself at exec. */
static void close_above(int last_kept, int keep_open) {
  if (keep_open < 0) { close_between((unsigned)last_kept + 1, ~0U); return; }
  close_between((unsigned)last_kept + 1, (unsigned)keep_open - 1);
  close_between((unsigned)keep_open + 1, ~0U);
  if (fcntl(keep_open, F_SETFD, FD_CLOEXEC) < 0) die(124, "gate cloexec", NULL);
}

static void wait_gate(int fd) {
  char c = 'r';
  ssize_t n;
  /* Best effort: a manager that does not read it still sends the go (it also polls). */
  do n = write(fd, &c, 1); while (n < 0 && errno == EINTR);
  c = 0;
  do n = read(fd, &c, 1); while (n < 0 && errno == EINTR);
  if (n != 1 || c != 'g') { errno = ECANCELED; die(123, "gate:", "the manager did not confirm the start"); }
}

static int run_inner(int argc, char **argv) {
  char *ro[MAX_ITEMS], *rw[MAX_ITEMS], *limits[MAX_ITEMS];
  int nro = 0, nrw = 0, nlim = 0, required = 0, i;
  long long keep = -1, gate = -1, errfd = -1;
  for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(opt, "--ll-required") == 0) { required = 1; continue; }
    if (!val) usage("option without a value");
    if (strcmp(opt, "--keep") == 0) { if (parse_int(val, 0, 65536, &keep) < 0) usage("bad --keep"); }
    else if (strcmp(opt, "--gate") == 0) { if (parse_int(val, 3, INT_MAX, &gate) < 0) usage("bad --gate"); }
    else if (strcmp(opt, "--stderr-fd") == 0) { if (parse_int(val, 3, INT_MAX, &errfd) < 0) usage("bad --stderr-fd"); }
    else if (strcmp(opt, "--rlimit") == 0 && nlim < MAX_ITEMS) limits[nlim++] = argv[i + 1];
    else if (strcmp(opt, "--ll-ro") == 0 && nro < MAX_ITEMS) ro[nro++] = argv[i + 1];
    else if (strcmp(opt, "--ll-rw") == 0 && nrw < MAX_ITEMS) rw[nrw++] = argv[i + 1];
    else usage("unknown option or too many items");
    i++;
  }
  if (keep < 0 || i + 1 >= argc) usage("inner needs --keep N and -- PROGRAM");
  if ((gate >= 0 && gate <= 2 + keep) || (errfd >= 0 && errfd <= 2 + keep)) usage("--gate and --stderr-fd must be above the kept fds");
  /* Order: gate (nothing runs unconfirmed), stderr, fds (nothing leaks), rlimits, Landlock last: it forbids nothing we still need. */
  if (gate >= 0) { wait_gate((int)gate); report_fd = (int)gate; }
  if (errfd >= 0 && dup2((int)errfd, 2) < 0) die(124, "stderr", NULL);
  signal(SIGPIPE, SIG_DFL); /* pre ignored it for the setup chain; the program gets the default back */
  close_above(2 + (int)keep, (int)gate);
  for (int j = 0; j < nlim; j++) set_rlimit(limits[j]);
  if (nro + nrw > 0) apply_landlock(ro, nro, rw, nrw, required);
  execv(argv[i + 1], argv + i + 1);
  die(127, "exec", argv[i + 1]);
  return 127;
}

static void write_pid(const char *file, int self_thread) {
  char buf[32];
  int len = self_thread ? snprintf(buf, sizeof buf, "0\n") : snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(122, "cgroup: open", file);
  if (write(fd, buf, (size_t)len) != len) die(122, "cgroup: join", file);
  if (close(fd) < 0) die(122, "cgroup: join", file);
}

static int run_pre(int argc, char **argv) {
  const char *netns = NULL;
  int i;
  for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc) usage("option without a value");
    if (strcmp(argv[i], "--netns") == 0) netns = argv[i + 1];
    else if (strcmp(argv[i], "--cgroup-procs") != 0 && strcmp(argv[i], "--cgroup-tasks") != 0) usage("unknown option");
  }
  if (i + 1 >= argc) usage("pre needs -- PROGRAM");
  /* fd 2 is a pipe to the manager during setup; it may be gone later: never die of writing to it. */
  signal(SIGPIPE, SIG_IGN);
  if (netns) {
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) die(121, "netns: join", netns);
    close(fd);
  }
  /* Join before exec: the program's first instruction must already run under the limits. */
  for (int j = 2; j < i; j += 2) {
    if (strcmp(argv[j], "--cgroup-procs") == 0) write_pid(argv[j + 1], 0);
    else if (strcmp(argv[j], "--cgroup-tasks") == 0) write_pid(argv[j + 1], 1);
  }
  execv(argv[i + 1], argv + i + 1);
  die(127, "exec", argv[i + 1]);
  return 127;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "pre") == 0) return run_pre(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "inner") == 0) return run_inner(argc, argv);
  if (argc == 2 && strcmp(argv[1], "abi") == 0) { printf("%d\n", landlock_abi()); return 0; }
  usage("usage: warden-exec pre|inner|abi ...");
  return 120;
}
