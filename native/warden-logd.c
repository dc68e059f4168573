/*
 * warden-logd: a VM's log writer. QEMU never writes a log file itself: it gets the write
 * end of a pipe (serial console log, its own stderr), and this process appends what comes
 * out of the pipe to the log, keeping it under a byte cap by rotating it to LOG.1. So a
 * guest that prints without end cannot fill the host's disk. QEMU still waits for this
 * process once a pipe is full: its log write blocks (retrying EAGAIN under its big lock, so
 * QMP stalls too) until the writer drains the pipe. Each pipe holds 1 MiB so a slow disk
 * rarely matters; a writer that is stopped (SIGSTOP by root or by another process running
 * as the same user) freezes the VM after 1 MiB of output. It parses nothing it reads.
 *
 *   warden-logd [--user UID:GID] IN:LOG:ROTATED:CAP...
 *
 *   IN       fd of a pipe's read end
 *   LOG      fd of the log, opened O_RDWR|O_APPEND (read back when it is rotated)
 *   ROTATED  fd of LOG.1, opened O_RDWR (overwritten from offset 0 on each rotation)
 *   CAP      bytes; neither file grows past it (a longer burst keeps its last CAP bytes)
 *
 * It drops to UID:GID (no supplementary groups, no capabilities, no new privileges, not
 * dumpable) and closes every fd it was not given before reading anything, then writes one byte ("R") to stdout for the starter
 * and points stdout and stderr at /dev/null. It exits 0 once every pipe has reached end of file,
 * that is once every writer (QEMU, its jail's monitor, the manager) has closed its end.
 * Write errors (a full disk) lose the bytes, never stop the pump. Exit statuses: 2 usage,
 * 3 privilege drop, 4 poll.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_STREAMS 8
#define CHUNK 65536
/* Each pipe's capacity: how far QEMU may run ahead of a slow or stalled writer (see main). */
#define PIPE_BYTES (1 << 20)

struct stream {
  int in, log, rotated;
  long long cap;
};

static unsigned char buf[CHUNK];

static int parse_stream(const char *arg, struct stream *s) {
  char tail;
  return sscanf(arg, "%d:%d:%d:%lld%c", &s->in, &s->log, &s->rotated, &s->cap, &tail) == 4
      && s->in >= 0 && s->log >= 0 && s->rotated >= 0 && s->cap > 0;
}

/* A uid or gid: decimal digits only, below (uid_t)-1 (which set*id() read as "leave unchanged"). */
static int parse_id(const char *p, char stop, const char **end, unsigned *out) {
  unsigned long long v = 0;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (unsigned)(*p - '0');
    if (v >= 0xffffffffULL) return -1;
  }
  if (*p != stop) return -1;
  *out = (unsigned)v;
  *end = p;
  return 0;
}

/* Drops to UID:GID for good, and checks that it happened (all three ids of each). */
static int drop_to(const char *spec) {
  unsigned uid, gid;
  const char *p;
  if (parse_id(spec, ':', &p, &uid) < 0 || parse_id(p + 1, '\0', &p, &gid) < 0) { errno = EINVAL; return -1; }
  if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) return -1;
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0) return -1;
  if (r != uid || e != uid || s != uid || rg != gid || eg != gid || sg != gid || getgroups(0, NULL) != 0) { errno = EPERM; return -1; }
  return 0;
}

/* Writes all of [p, p+n) or gives up on an error: a lost log line must not stop the pump. */
static void write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/*
 * LOG's last CAP bytes -> ROTATED (replacing it), then LOG emptied; LOG's O_APPEND writes
 * continue at 0. LOG can be longer than CAP when it comes from an earlier run with a larger
 * cap: ROTATED still gets no more than CAP. -1 when LOG could not be emptied.
 */
static int rotate(const struct stream *s, off_t size) {
  off_t from = size > s->cap ? size - (off_t)s->cap : 0;
  if (ftruncate(s->rotated, 0) == 0) { /* if ROTATED cannot be replaced, the old output is lost, not kept in LOG */
    for (off_t at = 0;;) {
      ssize_t r = pread(s->log, buf, sizeof buf, from + at);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (pwrite(s->rotated, buf, (size_t)r, at) != r) break;
      at += r;
    }
  }
  return ftruncate(s->log, 0);
}

/* Moves one read's worth from the pipe to the log; 0 at end of file. */
static int pump(const struct stream *s) {
  ssize_t n = read(s->in, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
  if (n == 0) return 0;
  const unsigned char *p = buf;
  if (n > s->cap) { p += n - s->cap; n = (ssize_t)s->cap; }
  /* The cap is the promise: when the size is unknown or LOG cannot be emptied, the bytes are dropped. */
  struct stat st;
  if (fstat(s->log, &st) < 0) return 1;
  if (st.st_size > 0 && st.st_size + n > s->cap) {
    unsigned char keep[CHUNK];
    memcpy(keep, p, (size_t)n); /* rotate() reuses buf */
    if (rotate(s, st.st_size) < 0) return 1;
    write_all(s->log, keep, (size_t)n);
    return 1;
  }
  write_all(s->log, p, (size_t)n);
  return 1;
}

static int in_use(const struct stream *s, int count, int fd) {
  for (int k = 0; k < count; k++) if (s[k].in == fd || s[k].log == fd || s[k].rotated == fd) return 1;
  return 0;
}

/* Closes every fd above 2 that no stream names, whatever the starter let through. */
static void close_others(const struct stream *s, int count) {
  int max = 2;
  for (int k = 0; k < count; k++) {
    if (s[k].in > max) max = s[k].in;
    if (s[k].log > max) max = s[k].log;
    if (s[k].rotated > max) max = s[k].rotated;
  }
  for (int fd = 3; fd < max; fd++) if (!in_use(s, count, fd)) close(fd);
  if (syscall(SYS_close_range, (unsigned)max + 1, ~0U, 0) < 0)
    for (int fd = max + 1; fd < 65536; fd++) close(fd);
}

int main(int argc, char **argv) {
  struct stream streams[MAX_STREAMS];
  struct pollfd pfd[MAX_STREAMS];
  int count = 0, i = 1;
  const char *user = NULL;
  if (i + 1 < argc && strcmp(argv[i], "--user") == 0) { user = argv[i + 1]; i += 2; }
  for (; i < argc; i++) {
    if (count == MAX_STREAMS || !parse_stream(argv[i], &streams[count])) {
      fprintf(stderr, "warden-logd: bad stream \"%s\" (want IN:LOG:ROTATED:CAP, at most %d)\n", argv[i], MAX_STREAMS);
      return 2;
    }
    count++;
  }
  if (count == 0) { fprintf(stderr, "usage: warden-logd [--user UID:GID] IN:LOG:ROTATED:CAP...\n"); return 2; }
  close_others(streams, count);
  /*
   * QEMU's log writes block once a pipe is full (it retries EAGAIN, holding its big lock, so
   * QMP stalls too), and the default capacity is only 64 KiB: a writer waiting on a slow disk
   * would hold QEMU back after 64 KiB of output. 1 MiB (pipe-max-size's default, allowed even
   * unprivileged; set before the drop, so root is not held to nobody's pipe quota) absorbs a
   * long burst. Best effort: a pipe that keeps its size still works.
   */
  for (int k = 0; k < count; k++) (void)fcntl(streams[k].in, F_SETPIPE_SZ, PIPE_BYTES);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  /* A file-size limit inherited from the starter must not kill the writer (SIGXFSZ): an
   * overrun is a failed write. Lifted while still root where root has CAP_SYS_RESOURCE. */
  struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
  (void)setrlimit(RLIMIT_FSIZE, &unlimited);
  signal(SIGXFSZ, SIG_IGN);
  if (user != NULL && drop_to(user) < 0) { fprintf(stderr, "warden-logd: dropping to %s: %s\n", user, strerror(errno)); return 3; }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return 3;
  if (chdir("/") < 0) return 3;
  /* Ready: the starter waits for this byte; stdout and stderr are not used after it. The
   * fd table is final before the byte goes out (stderr already /dev/null, no spare fd), so a
   * starter that looks at the writer once it is ready sees what it will keep. */
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, 2) < 0) return 3;
  close(null);
  if (write(1, "R", 1) != 1 || dup2(2, 1) < 0) return 3;
  for (int k = 0; k < count; k++) { pfd[k].fd = streams[k].in; pfd[k].events = POLLIN; }
  for (int open_streams = count; open_streams > 0;) {
    if (poll(pfd, (nfds_t)count, -1) < 0) {
      if (errno == EINTR) continue;
      return 4;
    }
    for (int k = 0; k < count; k++) {
      if (pfd[k].fd < 0 || pfd[k].revents == 0) continue;
      if (!pump(&streams[k])) {
        close(streams[k].in);
        pfd[k].fd = -1; /* poll ignores negative fds */
        open_streams--;
      }
    }
  }
  return 0;
}
