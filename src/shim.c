/*
 * shim.c: the host's side of borglua-exec (see exec-shim.c).
 *
 * The program is compiled into the library as a byte array
 * (build/shim-image.c) and copied into an anonymous in-memory file at the
 * first spawn, so the borglua program, libborglua and the borg.so module
 * of stock lua5.4 need no installed helper. The core executes it as
 * /proc/self/fd/N; when the system cannot do that, borglua__shim_open
 * returns -1 and children run without a parent-death signal.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"

extern const unsigned char borglua__shim_image[];
extern const size_t borglua__shim_size;

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: ask for an executable memfd */
#endif


/* Return a new sealed memfd holding the image, or -1. */
static int image_fd(void) {
  const unsigned char *p = borglua__shim_image;
  size_t left = borglua__shim_size;
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  int fd = memfd_create("borglua-exec", flags | MFD_EXEC);
  if (fd < 0 && errno == EINVAL)
    fd = memfd_create("borglua-exec", flags); /* kernels before 6.3 */
  if (fd < 0)
    return -1;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      close(fd);
      return -1;
    }
    p += n;
    left -= (size_t)n;
  }
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                             F_SEAL_SEAL);
  return fd;
}


int borglua__shim_open(int min, char *path, size_t size) {
  int fd = image_fd(), high;
  if (fd < 0)
    return -1;
  /* A number above every stdio slot, so that no dup2 of the child's
   * stdio plan replaces it before the exec. */
  high = fcntl(fd, F_DUPFD_CLOEXEC, min);
  close(fd);
  if (high < 0)
    return -1;
  snprintf(path, size, "/proc/self/fd/%d", high);
  /* No /proc, or a system that forbids executable memfds. */
  if (access(path, X_OK) != 0) {
    close(high);
    return -1;
  }
  return high;
}


int borglua__shim_result(int fd) {
  int err = 0;
  char *p = (char *)&err;
  size_t got = 0;
  while (got < sizeof err) {
    ssize_t n = read(fd, p + got, sizeof err - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got == 0)
    return 0;
  return got == sizeof err ? err : EIO;
}
