/* sys.c: the borg.sys module, the few system calls the policy helpers need
 * and plain Lua lacks: an exclusive lock file, a pause, a file replaced
 * atomically, SHA-256 of a file, and a check that a process is alive.
 *
 * Every descriptor is opened with O_CLOEXEC, so no borg child inherits a
 * policy's lock or a half-written report. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "core.h"

#define LOCK_TYPE "borg.sys.lock"

typedef struct {
  int fd;
} lock_t;


/* Push nil and a message naming what failed; return 2 (for return). */
static int fail(lua_State *L, const char *what, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  return 2;
}


/* Read up to size-1 bytes of fd from its start into buf, as a C string. */
static void read_start(int fd, char *buf, size_t size) {
  ssize_t n = pread(fd, buf, size - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
}


/* sys.lock(path): take an exclusive flock on path, creating it. Returns
 * the lock and the file's previous text (the previous holder's pid, ""
 * when new). Returns nil, "busy" and the holder's text when another
 * process has the lock, or nil and a message on any other failure. */
static int sys_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char before[64], mine[32];
  lock_t *lock;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return fail(L, "cannot open lock file", path, errno);
  read_start(fd, before, sizeof before);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    read_start(fd, before, sizeof before);
    close(fd);
    if (err != EWOULDBLOCK)
      return fail(L, "cannot lock", path, err);
    lua_pushnil(L);
    lua_pushliteral(L, "busy");
    lua_pushstring(L, before);
    return 3;
  }
  /* Read again: the holder may have written between open and flock. */
  read_start(fd, before, sizeof before);
  snprintf(mine, sizeof mine, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, mine, strlen(mine), 0) < 0) {
    int err = errno;
    close(fd);
    return fail(L, "cannot write lock file", path, err);
  }
  lock = lua_newuserdatauv(L, sizeof *lock, 0);
  lock->fd = fd;
  luaL_setmetatable(L, LOCK_TYPE);
  lua_pushstring(L, before);
  return 2;
}


/* lock:unlock(): empty the file and release the lock. Safe to repeat. */
static int lock_unlock(lua_State *L) {
  lock_t *lock = luaL_checkudata(L, 1, LOCK_TYPE);
  if (lock->fd >= 0) {
    if (ftruncate(lock->fd, 0) != 0) {
      /* The lock is released by close below all the same. */
    }
    close(lock->fd);
    lock->fd = -1;
  }
  return 0;
}


static int lock_held(lua_State *L) {
  lock_t *lock = luaL_checkudata(L, 1, LOCK_TYPE);
  lua_pushboolean(L, lock->fd >= 0);
  return 1;
}


/* sys.sleep(seconds): pause the host; signals end it early. */
static int sys_sleep(lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  struct timespec ts;
  if (!(seconds > 0))
    return 0;
  if (seconds > 1e6)
    seconds = 1e6;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - floor(seconds)) * 1e9);
  nanosleep(&ts, NULL);
  return 0;
}


/* Write all of data to fd; return 0 or an errno value. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}


/* sys.write_file(path, data[, mode]): replace path with data atomically:
 * a temporary file beside it, written, synced, then renamed over it. A
 * reader sees the old file or the new one, never a part. Returns true or
 * nil, message. */
static int sys_write_file(lua_State *L) {
  size_t len;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer mode = luaL_optinteger(L, 3, 0644);
  const char *slash = strrchr(path, '/');
  char temp[PATH_MAX], dir[PATH_MAX];
  int fd, err, dfd;
  size_t dirlen = slash ? (size_t)(slash - path) : 0;
  if (slash && dirlen == 0)
    dirlen = 1;
  if (dirlen >= sizeof dir ||
      snprintf(temp, sizeof temp, "%.*s%s.%s.XXXXXX", (int)dirlen,
               slash ? path : "", slash && dirlen > 1 ? "/" : "",
               slash ? slash + 1 : path) >= (int)sizeof temp)
    return fail(L, "cannot write", path, ENAMETOOLONG);
  fd = mkostemp(temp, O_CLOEXEC);
  if (fd < 0)
    return fail(L, "cannot create a temporary file beside", path, errno);
  err = write_all(fd, data, len);
  if (err == 0 && fchmod(fd, (mode_t)(mode & 07777)) != 0)
    err = errno;
  if (err == 0 && fsync(fd) != 0)
    err = errno;
  if (close(fd) != 0 && err == 0)
    err = errno;
  if (err == 0 && rename(temp, path) != 0)
    err = errno;
  if (err != 0) {
    unlink(temp);
    return fail(L, "cannot write", path, err);
  }
  /* Sync the directory so that the rename itself survives a crash. */
  if (slash)
    snprintf(dir, sizeof dir, "%.*s", (int)dirlen, path);
  else
    strcpy(dir, ".");
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0) {
      /* Some file systems refuse to sync a directory; the data is safe. */
    }
    close(dfd);
  }
  lua_pushboolean(L, 1);
  return 1;
}


/* SHA-256 (FIPS 180-4). */

typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
} sha256_t;

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
  0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_t *s, const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) +
                  ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) +
                  ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1;
    d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
  s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(sha256_t *s) {
  static const uint32_t start[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  };
  memcpy(s->h, start, sizeof start);
  s->bytes = 0;
  s->used = 0;
}

static void sha256_update(sha256_t *s, const unsigned char *p, size_t len) {
  s->bytes += len;
  while (len > 0) {
    size_t take = 64 - s->used;
    if (take > len)
      take = len;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used == 64) {
      sha256_block(s, s->block);
      s->used = 0;
    }
  }
}

/* Finish s and write the digest as 64 hex digits and a NUL to hex. */
static void sha256_hex(sha256_t *s, char hex[65]) {
  uint64_t bits = s->bytes * 8;
  unsigned char pad[72] = { 0x80 };
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  int i;
  for (i = 0; i < 8; i++)
    pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(s, pad, padlen + 8);
  for (i = 0; i < 8; i++)
    snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}


/* sys.sha256(data): the hex digest of a string. */
static int sys_sha256(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  sha256_t s;
  char hex[65];
  sha256_init(&s);
  sha256_update(&s, (const unsigned char *)data, len);
  sha256_hex(&s, hex);
  lua_pushstring(L, hex);
  return 1;
}


/* sys.sha256_file(path): the hex digest of a file's content, read in
 * blocks; or nil, message. */
static int sys_sha256_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  unsigned char buf[65536];
  sha256_t s;
  char hex[65];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return fail(L, "cannot open", path, errno);
  sha256_init(&s);
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      int err = errno;
      if (err == EINTR)
        continue;
      close(fd);
      return fail(L, "cannot read", path, err);
    }
    sha256_update(&s, buf, (size_t)n);
  }
  close(fd);
  sha256_hex(&s, hex);
  lua_pushstring(L, hex);
  return 1;
}


/* sys.alive(pid): true when a process with that pid exists. */
static int sys_alive(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  if (pid <= 0 || pid > INT_MAX) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, kill((pid_t)pid, 0) == 0 || errno == EPERM);
  return 1;
}


static int sys_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}


/* sys.mkdtemp([prefix]): create a new directory readable only by the
 * user, named prefix followed by six random characters (prefix defaults
 * to $TMPDIR/borglua. or /tmp/borglua.); return its path or nil, message. */
static int sys_mkdtemp(lua_State *L) {
  char path[PATH_MAX];
  const char *prefix = luaL_optstring(L, 1, NULL);
  const char *tmp = getenv("TMPDIR");
  int n;
  if (prefix != NULL)
    n = snprintf(path, sizeof path, "%sXXXXXX", prefix);
  else
    n = snprintf(path, sizeof path, "%s/borglua.XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (n < 0 || n >= (int)sizeof path)
    return fail(L, "cannot create a directory named", prefix, ENAMETOOLONG);
  if (mkdtemp(path) == NULL)
    return fail(L, "cannot create a directory named", path, errno);
  lua_pushstring(L, path);
  return 1;
}


static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP)
    return rmdir(path) != 0 ? errno : 0;
  return unlink(path) != 0 ? errno : 0;
}


/* sys.remove_tree(path): remove a directory and everything under it,
 * never following symbolic links; true or nil, message. */
static int sys_remove_tree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int err = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (err != 0)
    return fail(L, "cannot remove", path, err > 0 ? err : errno);
  lua_pushboolean(L, 1);
  return 1;
}


int borglua__open_sys(lua_State *L) {
  static const luaL_Reg functions[] = {
    { "alive", sys_alive },
    { "getpid", sys_getpid },
    { "lock", sys_lock },
    { "mkdtemp", sys_mkdtemp },
    { "remove_tree", sys_remove_tree },
    { "sha256", sys_sha256 },
    { "sha256_file", sys_sha256_file },
    { "sleep", sys_sleep },
    { "write_file", sys_write_file },
    { NULL, NULL },
  };
  static const luaL_Reg lock_methods[] = {
    { "unlock", lock_unlock },
    { "held", lock_held },
    { NULL, NULL },
  };
  if (luaL_newmetatable(L, LOCK_TYPE)) {
    luaL_newlib(L, lock_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lock_unlock);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_unlock);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  return 1;
}
