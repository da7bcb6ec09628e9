/*
 * exec-shim.c: borglua-exec, the first program of every child.
 *
 *   borglua-exec PARENT SIGNAL ERRFD PROGRAM ARG0 [ARG...]
 *
 * libuv's uv_spawn runs no code of ours in the child between fork and
 * exec, so the core starts this program instead of PROGRAM. It sets
 * PR_SET_PDEATHSIG, so that the kernel sends SIGNAL when the thread that
 * spawned it ends (the setting survives execve), then replaces itself
 * with PROGRAM, searched in PATH as execvp does. So the child is signalled
 * even when the host is killed by SIGKILL. A host that died before the
 * request is caught by comparing the parent with PARENT.
 *
 * ERRFD is a pipe to the host. A successful exec closes it (it is set
 * close-on-exec here); otherwise the errno of execvp is written to it as
 * an int and the shim exits with 127.
 *
 * The build embeds this program in the core (see shim.c), so it needs no
 * file on disk.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>


/* Write err to fd in full; nothing can be done when that fails. */
static void report(int fd, int err) {
  const char *p = (const char *)&err;
  size_t left = sizeof err;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    p += n;
    left -= (size_t)n;
  }
}


int main(int argc, char **argv) {
  long parent, sig, errfd;
  if (argc < 6)
    return 127;
  parent = strtol(argv[1], NULL, 10);
  sig = strtol(argv[2], NULL, 10);
  errfd = strtol(argv[3], NULL, 10);
  if (fcntl((int)errfd, F_SETFD, FD_CLOEXEC) != 0)
    return 127;
  if (prctl(PR_SET_PDEATHSIG, sig) != 0) {
    report((int)errfd, errno);
    return 127;
  }
  /* The host died before prctl took effect, so no signal will come. */
  if (getppid() != (pid_t)parent)
    return 128 + (int)sig;
  /* libuv forked this process and has no hook before exec, which is why
   * this shim exists; it only replaces itself with the program. */
  execvp(argv[4], argv + 5);
  report((int)errfd, errno);
  return 127;
}
