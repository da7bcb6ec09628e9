/*
 * warm.c: warm borg servers behind core.spawn.
 *
 * Starting borg costs a Python interpreter, borg's imports and its
 * self-test on every call. A warm server (src/warm.py, compiled into the
 * program) pays that once per borg program and then forks one child per
 * call. This file decides whether a call can use a server, starts
 * servers lazily, passes each call's argv, environment, directory, umask
 * and descriptors over a Unix socketpair (SCM_RIGHTS), and turns the
 * server's reports into the exit callback that core.c expects.
 *
 * Servers are children of the host in sessions of their own. A server
 * exits when its socket reaches end of file, which happens when the host
 * closes the pool or exits in any way, SIGKILL included. It terminates
 * its children first. A server is started with the start-up variables of
 * the call that needed it (see STARTUP_* in warm.py), and it turns down a
 * call whose start-up variables differ, so another server starts for
 * those (up to MAX_SERVERS per program).
 *
 * Nothing here raises a Lua error: a call that cannot use a server is
 * left to uv_spawn, with a reason for a debug log line.
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uv.h>

#include "warm.h"

/* The source of src/warm.py, generated into build/warm_source.c. */
extern const char borglua__warm_source[];
extern const size_t borglua__warm_source_size;

/* Servers per program, one per set of start-up variables. */
#define MAX_SERVERS 4
/* Import and self-test take well under a second on an idle machine. */
#define START_TIMEOUT_MS 60000
#define REPLY_TIMEOUT_MS 30000
/* A server gives its children 5 s after SIGTERM when the host is gone. */
#define STOP_TIMEOUT_MS 2000
/* Linux reads at most this much of a #! line. */
#define SHEBANG_SIZE 256
#define MAX_SLOTS 128
#define MAX_MESSAGE 4096

/* Frames to the server, and from it (see warm.py). */
enum { TO_INIT = 1, TO_SPAWN = 2 };
enum { FROM_READY = 1, FROM_FAILED = 2, FROM_STARTED = 3, FROM_REJECTED = 4,
       FROM_MISMATCH = 5, FROM_EXITED = 6 };
enum { STARTING, READY, DEAD };

typedef struct warm_child {
  struct warm_child *next;
  int pid;
  warm_exit_fn on_exit;
  void *owner;
} warm_child;

typedef struct warm_server {
  struct warm_server *next;
  warm_pool *pool;
  char *script;
  int fd;               /* the host's end of the socketpair */
  int state;
  char *failure;        /* the FAILED message */
  uv_process_t process;
  uv_poll_t poll;
  uv_timer_t timer;     /* limits waits for the server */
  uv_timer_t backlog;   /* handles frames left in the buffer */
  int open_handles;
  int poll_open, exited, timed_out;
  int spawn_called;     /* uv_spawn initialised the process handle */
  char *in;             /* bytes received, not yet handled */
  size_t in_len, in_cap;
  warm_child *children;
  int nchildren;
  uint32_t next_id;
  uint32_t wait_id;     /* request whose reply warm_spawn waits for */
  int reply, reply_pid;
  warm_exit_fn pending_exit;
  void *pending_owner;
  uint64_t used;
} warm_server;

typedef struct fallback {
  struct fallback *next;
  char *script;
  char *reason;
} fallback;

struct warm_pool {
  uv_loop_t *loop;
  warm_server *servers;
  fallback *fallbacks;
  int closing;
  int open_servers;     /* servers with handles not yet closed */
  char message[PATH_MAX + MAX_MESSAGE]; /* reason of the last fallback */
};

/* The descriptors of one request: what the child gets at each slot. */
typedef struct request {
  int cwd;
  int count;
  int targets[MAX_SLOTS];
  int child[MAX_SLOTS];  /* descriptor sent for the slot */
  int owned[MAX_SLOTS];  /* 1 when this file opened child[i] */
  int parent[MAX_SLOTS]; /* host end of a UV_CREATE_PIPE slot, or -1 */
  int slot[MAX_SLOTS];   /* index in the stdio plan */
} request;

/* A frame being built: 8 bytes of header, then the body. */
typedef struct frame {
  char *data;
  size_t len, cap;
  int failed;
} frame;

extern char **environ;


/* ---- small helpers ----------------------------------------------------- */

static void put(frame *f, const void *p, size_t n) {
  if (f->failed)
    return;
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 4096;
    char *grown;
    while (cap < f->len + n)
      cap *= 2;
    grown = realloc(f->data, cap);
    if (grown == NULL) {
      f->failed = 1;
      return;
    }
    f->data = grown;
    f->cap = cap;
  }
  memcpy(f->data + f->len, p, n);
  f->len += n;
}


static void put_u32(frame *f, uint32_t v) {
  put(f, &v, sizeof v);
}


/* Append a NULL-terminated list of strings: count, then length + bytes. */
static void put_strings(frame *f, char **list) {
  uint32_t n = 0;
  char **s;
  for (s = list; s && *s; s++)
    n++;
  put_u32(f, n);
  for (s = list; s && *s; s++) {
    put_u32(f, (uint32_t)strlen(*s));
    put(f, *s, strlen(*s));
  }
}


static void begin_frame(frame *f, uint32_t type) {
  memset(f, 0, sizeof *f);
  put_u32(f, 0);
  put_u32(f, type);
}


/* Fill in the length of the body once it is complete. */
static void end_frame(frame *f) {
  uint32_t len = (uint32_t)(f->len - 8);
  if (!f->failed)
    memcpy(f->data, &len, sizeof len);
}


static const char *env_get(char **env, const char *name) {
  size_t n = strlen(name);
  for (; env && *env; env++)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
      return *env + n + 1;
  return NULL;
}


static char **call_env(const uv_process_options_t *opt) {
  return opt->env ? opt->env : environ;
}


static int is_executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}


/* Find file as execvp does, with the PATH of env; store its absolute
 * path in out. Returns -1 when it is not found, or when a relative path
 * is involved: exec then resolves it against the call's directory. */
static int resolve_program(const char *file, char **env, char *out,
                           size_t size) {
  const char *path, *dir, *end;
  if (strchr(file, '/') != NULL) {
    if (file[0] != '/' || (size_t)snprintf(out, size, "%s", file) >= size)
      return -1;
    return is_executable_file(out) ? 0 : -1;
  }
  path = env_get(env, "PATH");
  if (path == NULL)
    path = "/bin:/usr/bin"; /* glibc's execvp default */
  for (dir = path; ; dir = end + 1) {
    int len;
    end = strchr(dir, ':');
    len = end ? (int)(end - dir) : (int)strlen(dir);
    if (len == 0 || dir[0] != '/')
      return -1;
    if (snprintf(out, size, "%.*s/%s", len, dir, file) < (int)size &&
        is_executable_file(out))
      return 0;
    if (end == NULL)
      return -1;
  }
}


static int is_python(const char *name) {
  const char *base = strrchr(name, '/');
  return strncmp(base ? base + 1 : name, "python", 6) == 0;
}


/* Read the #! line of script into line and split it as Linux does: the
 * interpreter, then the rest as one optional argument. Returns 1 when the
 * interpreter is Python, directly or as `/usr/bin/env pythonX`, and sets
 * *via_env for the second form. */
static int python_script(const char *script, char *line, char **interp,
                         char **arg, int *via_env) {
  int fd = open(script, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  char *p, *nl, *base;
  if (fd < 0)
    return 0;
  n = read(fd, line, SHEBANG_SIZE - 1);
  close(fd);
  if (n < 2 || line[0] != '#' || line[1] != '!')
    return 0;
  line[n] = '\0';
  nl = strchr(line, '\n');
  if (nl == NULL)
    return 0;
  *nl = '\0';
  for (p = line + 2; *p == ' ' || *p == '\t'; p++)
    ;
  *interp = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  if (*p)
    *p++ = '\0';
  while (*p == ' ' || *p == '\t')
    p++;
  *arg = *p ? p : NULL;
  for (p = *arg ? *arg + strlen(*arg) : NULL; p && p > *arg &&
       (p[-1] == ' ' || p[-1] == '\t'); p--)
    p[-1] = '\0';
  base = strrchr(*interp, '/');
  *via_env = strcmp(base ? base + 1 : *interp, "env") == 0;
  if (*via_env)
    return *arg != NULL && strpbrk(*arg, " \t") == NULL && is_python(*arg);
  return is_python(*interp);
}


/* Return 1 for a variable that the interpreter or the dynamic loader read
 * at start-up; keep in step with STARTUP_* in warm.py. */
static int startup_variable(const char *entry, int via_env) {
  static const char *const prefixes[] = {"PYTHON", "LC_", "LD_", "MALLOC_",
                                         NULL};
  static const char *const names[] = {"LANG=", "LANGUAGE=", "HOME=", "TZ=",
                                      "GLIBC_TUNABLES=", NULL};
  int i;
  for (i = 0; prefixes[i]; i++)
    if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
      return 1;
  for (i = 0; names[i]; i++)
    if (strncmp(entry, names[i], strlen(names[i])) == 0)
      return 1;
  return via_env && strncmp(entry, "PATH=", 5) == 0;
}


/* Return the umask of the host, read from /proc without changing it. */
static unsigned current_umask(void) {
  FILE *status = fopen("/proc/self/status", "re");
  char line[256];
  unsigned mask = 0;
  int found = 0;
  if (status != NULL) {
    while (!found && fgets(line, sizeof line, status))
      found = sscanf(line, "Umask: %o", &mask) == 1;
    fclose(status);
  }
  if (!found) {
    mode_t old = umask(022);
    umask(old);
    mask = (unsigned)old;
  }
  return mask;
}


/* ---- sending ----------------------------------------------------------- */

static void server_lost(warm_server *s);


/* Append the bytes waiting on the socket to the input buffer. Returns
 * -1 at end of file or on an error, else 0. */
static int drain_input(warm_server *s) {
  for (;;) {
    ssize_t n;
    if (s->in_cap - s->in_len < 65536) {
      size_t cap = s->in_cap ? s->in_cap * 2 : 131072;
      char *grown = realloc(s->in, cap);
      if (grown == NULL)
        return -1;
      s->in = grown;
      s->in_cap = cap;
    }
    n = recv(s->fd, s->in + s->in_len, s->in_cap - s->in_len, MSG_DONTWAIT);
    if (n > 0)
      s->in_len += (size_t)n;
    else if (n == 0)
      return -1;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 0;
    else if (errno != EINTR)
      return -1;
  }
}


/* Send a whole frame, with fds attached to its first bytes. While the
 * socket is full, read what the server sends, so that neither side can
 * wait for the other. Returns 0, or -1 when the server is gone. */
static int send_frame(warm_server *s, const frame *f, const int *fds,
                      int nfds) {
  size_t sent = 0;
  int fds_sent = nfds == 0;
  if (f->failed || s->fd < 0)
    return -1;
  while (sent < f->len) {
    struct msghdr msg;
    struct iovec iov;
    union {
      char buf[CMSG_SPACE(sizeof(int) * MAX_SLOTS)];
      struct cmsghdr align;
    } control;
    ssize_t n;
    memset(&msg, 0, sizeof msg);
    iov.iov_base = f->data + sent;
    iov.iov_len = f->len - sent;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      struct cmsghdr *c;
      memset(&control, 0, sizeof control);
      msg.msg_control = control.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += (size_t)n;
      fds_sent = 1;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd;
      pfd.fd = s->fd;
      pfd.events = POLLIN | POLLOUT;
      if (poll(&pfd, 1, REPLY_TIMEOUT_MS) <= 0)
        return -1;
      if ((pfd.revents & POLLIN) && drain_input(s) != 0)
        return -1;
    } else if (n < 0 && errno != EINTR) {
      return -1;
    }
  }
  return 0;
}


/* ---- receiving --------------------------------------------------------- */

static void child_exited(warm_server *s, int pid, int64_t status, int sig) {
  warm_child **link, *c;
  for (link = &s->children; *link; link = &(*link)->next) {
    if ((*link)->pid != pid)
      continue;
    c = *link;
    *link = c->next;
    s->nchildren--;
    if (s->nchildren == 0 && s->poll_open)
      uv_unref((uv_handle_t *)&s->poll);
    c->on_exit(c->owner, status, sig);
    free(c);
    break;
  }
}


static void child_started(warm_server *s, int pid) {
  warm_child *c = malloc(sizeof *c);
  if (c == NULL) {
    uv_kill(-pid, SIGKILL);
    s->reply = FROM_REJECTED;
    return;
  }
  c->pid = pid;
  c->on_exit = s->pending_exit;
  c->owner = s->pending_owner;
  c->next = s->children;
  s->children = c;
  if (s->nchildren++ == 0 && s->poll_open)
    uv_ref((uv_handle_t *)&s->poll);
  s->reply = FROM_STARTED;
  s->reply_pid = pid;
}


static uint32_t get_u32(const char *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}


static void on_backlog(uv_timer_t *t);


/* Handle the complete frames in the input buffer. It stops after the
 * reply that warm_spawn waits for: the caller has not finished setting
 * up that child yet, so a report of its exit waits for the next turn of
 * the loop. */
static void handle_frames(warm_server *s) {
  while (s->in_len >= 8) {
    uint32_t len = get_u32(s->in), type = get_u32(s->in + 4);
    uint32_t id = 0, a = 0, b = 0, c = 0;
    char *text = NULL;
    if (s->in_len < 8 + (size_t)len)
      break;
    if (len >= 4)
      id = a = get_u32(s->in + 8);
    if (len >= 8)
      b = get_u32(s->in + 12);
    if (len >= 12)
      c = get_u32(s->in + 16);
    if (type == FROM_FAILED)
      text = strndup(s->in + 8, len < MAX_MESSAGE ? len : MAX_MESSAGE);
    /* Consume the frame first: handling it may receive more input. */
    memmove(s->in, s->in + 8 + len, s->in_len - 8 - len);
    s->in_len -= 8 + (size_t)len;

    switch (type) {
    case FROM_READY:
      s->state = READY;
      break;
    case FROM_FAILED:
      free(s->failure);
      s->failure = text;
      break;
    case FROM_EXITED:
      child_exited(s, (int)a, (int32_t)b, (int)c);
      break;
    case FROM_STARTED:
    case FROM_REJECTED:
    case FROM_MISMATCH:
      if (id != s->wait_id || s->wait_id == 0)
        break;
      s->wait_id = 0;
      if (type == FROM_STARTED)
        child_started(s, (int)b);
      else
        s->reply = (int)type;
      if (s->in_len >= 8)
        uv_timer_start(&s->backlog, on_backlog, 0, 0);
      return;
    }
  }
}


static void on_backlog(uv_timer_t *t) {
  handle_frames(t->data);
}


static void on_poll(uv_poll_t *h, int status, int events) {
  warm_server *s = h->data;
  int lost = status < 0 || drain_input(s) != 0;
  (void)events;
  handle_frames(s);
  if (lost)
    server_lost(s);
}


/* ---- server life ------------------------------------------------------- */

static void free_pool(warm_pool *pool) {
  fallback *r = pool->fallbacks;
  while (r) {
    fallback *next = r->next;
    free(r->script);
    free(r->reason);
    free(r);
    r = next;
  }
  free(pool);
}


static void free_server(warm_server *s) {
  warm_pool *pool = s->pool;
  free(s->script);
  free(s->failure);
  free(s->in);
  free(s);
  if (--pool->open_servers == 0 && pool->closing)
    free_pool(pool);
}


/* Free a server whose process never started. */
static void on_close_unstarted(uv_handle_t *h) {
  warm_server *s = h->data;
  free(s->script);
  free(s);
}


static void on_close(uv_handle_t *h) {
  warm_server *s = h->data;
  if (--s->open_handles == 0 && s->pool->closing)
    free_server(s);
}


/* Mark a server that is gone or must not be used again. Closing the
 * socket makes a live server exit, and its children are reported as
 * killed, because they die with it (parent-death signal SIGKILL). */
static void server_lost(warm_server *s) {
  if (s->state == DEAD)
    return;
  s->state = DEAD;
  if (s->poll_open) {
    s->poll_open = 0;
    uv_close((uv_handle_t *)&s->poll, on_close);
  }
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  while (s->children) {
    warm_child *c = s->children;
    s->children = c->next;
    s->nchildren--;
    c->on_exit(c->owner, 0, SIGKILL);
    free(c);
  }
}


static void on_server_exit(uv_process_t *h, int64_t status, int sig) {
  warm_server *s = h->data;
  (void)status;
  (void)sig;
  s->exited = 1;
  uv_close((uv_handle_t *)&s->process, on_close);
  server_lost(s);
}


static void on_wait_timer(uv_timer_t *t) {
  warm_server *s = t->data;
  s->timed_out = 1;
}


static int has_exited(warm_server *s) {
  return s->exited;
}


static int is_started(warm_server *s) {
  return s->state != STARTING || s->failure != NULL;
}


static int has_reply(warm_server *s) {
  return s->reply != 0 || s->state == DEAD;
}


/* Run the loop until done(s) or ms milliseconds passed. The loop keeps
 * serving the other children meanwhile. */
static void run_until(warm_server *s, int (*done)(warm_server *), uint64_t ms) {
  s->timed_out = 0;
  /* The loop's clock stands still while Lua runs without it. */
  uv_update_time(s->pool->loop);
  uv_timer_start(&s->timer, on_wait_timer, ms, 0);
  while (!done(s) && !s->timed_out)
    uv_run(s->pool->loop, UV_RUN_ONCE);
  uv_timer_stop(&s->timer);
}


/* Stop a server and wait for it to exit, with SIGKILL if it takes long. */
static void stop_server(warm_server *s) {
  server_lost(s);
  if (s->exited)
    return;
  uv_ref((uv_handle_t *)&s->process);
  /* Ask it to end at once rather than wait for it to notice the closed
   * socket: a host that exits must not hang on its server. */
  uv_process_kill(&s->process, SIGTERM);
  run_until(s, has_exited, STOP_TIMEOUT_MS);
  if (!s->exited) {
    uv_process_kill(&s->process, SIGKILL);
    run_until(s, has_exited, STOP_TIMEOUT_MS);
  }
}


/* Record that script cannot be served; returns the stored reason. */
static const char *record_fallback(warm_pool *pool, const char *script,
                          const char *fmt, ...) {
  fallback *r = calloc(1, sizeof *r);
  char text[MAX_MESSAGE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (r == NULL || (r->script = strdup(script)) == NULL ||
      (r->reason = strdup(text)) == NULL) {
    if (r)
      free(r->script);
    free(r);
    snprintf(pool->message, sizeof pool->message, "%s", text);
    return pool->message;
  }
  r->next = pool->fallbacks;
  pool->fallbacks = r;
  return r->reason;
}


static const char *fallback_reason(warm_pool *pool, const char *script) {
  fallback *r;
  for (r = pool->fallbacks; r; r = r->next)
    if (strcmp(r->script, script) == 0)
      return r->reason;
  return NULL;
}


/* Spawn the server process for script; returns 0 or a libuv error. */
static int spawn_server(warm_server *s, char **args, char **env, int sock) {
  uv_process_options_t opt;
  uv_stdio_container_t stdio[4];
  uv_file source[2];
  size_t done = 0;
  int r;

  /* The source fits in a new pipe's buffer, so these writes complete. */
  if (borglua__warm_source_size >= 65536)
    return UV_E2BIG;
  r = uv_pipe(source, 0, 0);
  if (r != 0)
    return r;
  while (done < borglua__warm_source_size) {
    ssize_t n = write(source[1], borglua__warm_source + done,
                      borglua__warm_source_size - done);
    if (n < 0 && errno != EINTR)
      break;
    if (n > 0)
      done += (size_t)n;
  }
  close(source[1]);

  memset(&opt, 0, sizeof opt);
  memset(stdio, 0, sizeof stdio);
  stdio[0].flags = UV_INHERIT_FD;
  stdio[0].data.fd = source[0];
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_IGNORE;
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = sock;
  opt.file = args[0];
  opt.args = args;
  opt.env = env;
  /* Each child gets its call's directory; the server itself keeps none
   * busy, so a file system the host left can still be unmounted. */
  opt.cwd = "/";
  opt.stdio = stdio;
  opt.stdio_count = 4;
  opt.exit_cb = on_server_exit;
  /* A session of its own, so a terminal's signals reach only the host,
   * which forwards them to the children it chooses. */
  opt.flags = UV_PROCESS_DETACHED;
  s->process.data = s;
  r = UV_EIO;
  if (done == borglua__warm_source_size) {
    s->spawn_called = 1;
    r = uv_spawn(s->pool->loop, &s->process, &opt);
  }
  close(source[0]);
  return r;
}


/* Return a new server for script, started with the start-up variables
 * of env and ready, or NULL with *reason set. */
static warm_server *start_server(warm_pool *pool, const char *script,
                                 char *interp, char *arg, int via_env,
                                 char **env, const char **reason) {
  warm_server *s = calloc(1, sizeof *s);
  char *args[6], **startup = NULL;
  int pair[2] = {-1, -1}, n = 0, i, r;
  frame f;

  if (s == NULL || (s->script = strdup(script)) == NULL) {
    free(s);
    *reason = "out of memory";
    return NULL;
  }
  s->pool = pool;
  s->fd = -1;
  for (i = 0; env[i]; i++)
    ;
  startup = calloc((size_t)i + 1, sizeof *startup);
  r = startup ? uv_socketpair(SOCK_STREAM, 0, pair, 0, 0) : UV_ENOMEM;
  if (r == 0) {
    for (i = 0; env[i]; i++)
      if (startup_variable(env[i], via_env))
        startup[n++] = env[i];
    args[0] = interp;
    n = 1;
    if (arg)
      args[n++] = arg;
    args[n++] = "-";
    args[n++] = (char *)script;
    if (via_env)
      args[n++] = "PATH";
    args[n] = NULL;
    r = spawn_server(s, args, startup, pair[1]);
    close(pair[1]);
  }
  free(startup);
  if (r != 0) {
    if (pair[0] >= 0)
      close(pair[0]);
    *reason = record_fallback(pool, script, "%s: cannot start a warm server"
                              " with %s (%s); running it with exec", script,
                              interp, uv_strerror(r));
    if (s->spawn_called) {
      uv_close((uv_handle_t *)&s->process, on_close_unstarted);
    } else {
      free(s->script);
      free(s);
    }
    return NULL;
  }

  /* From here on the handles own the server's memory. */
  s->fd = pair[0];
  fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
  s->open_handles = 4;
  uv_unref((uv_handle_t *)&s->process);
  uv_timer_init(pool->loop, &s->timer);
  uv_timer_init(pool->loop, &s->backlog);
  s->timer.data = s->backlog.data = s;
  uv_unref((uv_handle_t *)&s->backlog);
  uv_poll_init(pool->loop, &s->poll, s->fd);
  s->poll.data = s;
  s->poll_open = 1;
  uv_unref((uv_handle_t *)&s->poll);
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  s->next = pool->servers;
  pool->servers = s;
  pool->open_servers++;

  begin_frame(&f, TO_INIT);
  put_strings(&f, env);
  end_frame(&f);
  if (send_frame(s, &f, NULL, 0) == 0)
    run_until(s, is_started, START_TIMEOUT_MS);
  free(f.data);
  if (s->state == READY)
    return s;
  *reason = record_fallback(pool, script, "%s: the warm server did not"
                            " start (%s); running it with exec", script,
                            s->failure ? s->failure
                            : s->timed_out ? "it took longer than 60 s"
                            : "it exited during start-up");
  stop_server(s);
  return NULL;
}


/* ---- requests ---------------------------------------------------------- */

static void close_request(request *q, int parents) {
  int i;
  if (q->cwd >= 0)
    close(q->cwd);
  for (i = 0; i < q->count; i++) {
    if (q->owned[i])
      close(q->child[i]);
    if (parents && q->parent[i] >= 0)
      close(q->parent[i]);
  }
}


/* Open the descriptors the child gets, as uv_spawn would give them.
 * Returns 0, or -1 when exec should run the call and report the error. */
static int open_request(request *q, const uv_process_options_t *opt) {
  int i;
  memset(q, 0, sizeof *q);
  q->cwd = open(opt->cwd ? opt->cwd : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (q->cwd < 0 || opt->stdio_count > MAX_SLOTS)
    return close_request(q, 1), -1;
  for (i = 0; i < opt->stdio_count; i++) {
    const uv_stdio_container_t *c = &opt->stdio[i];
    int n = q->count, pair[2];
    q->parent[n] = -1;
    q->targets[n] = i;
    q->slot[n] = i;
    if (c->flags == UV_IGNORE) {
      /* uv_spawn puts /dev/null on 0-2 and leaves higher slots closed. */
      if (i > 2)
        continue;
      q->child[n] = open("/dev/null", (i == 0 ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      q->owned[n] = 1;
    } else if (c->flags & UV_CREATE_PIPE) {
      if (uv_socketpair(SOCK_STREAM, 0, pair, 0, 0) != 0)
        return close_request(q, 1), -1;
      q->parent[n] = pair[0];
      q->child[n] = pair[1];
      q->owned[n] = 1;
    } else if (c->flags & UV_INHERIT_FD) {
      q->child[n] = c->data.fd;
    } else if (c->flags & UV_INHERIT_STREAM) {
      uv_os_fd_t fd;
      if (uv_fileno((uv_handle_t *)c->data.stream, &fd) != 0)
        return close_request(q, 1), -1;
      q->child[n] = fd;
    } else {
      return close_request(q, 1), -1;
    }
    q->count++;
    if (q->child[n] < 0)
      return close_request(q, 1), -1;
  }
  return 0;
}


/* Build the SPAWN frame of request q; the id is filled in per server. */
static void build_spawn(frame *f, const request *q,
                        const uv_process_options_t *opt) {
  int i;
  begin_frame(f, TO_SPAWN);
  put_u32(f, 0);
  put_u32(f, current_umask());
  put_u32(f, (uint32_t)q->count);
  for (i = 0; i < q->count; i++)
    put_u32(f, (uint32_t)q->targets[i]);
  put_strings(f, opt->args);
  put_strings(f, call_env(opt));
  end_frame(f);
}


/* Ask server s to start the request. Returns 1 when it started (pid in
 * *pid), 0 when the server serves other start-up variables, -1 when the
 * server failed. */
static int ask_server(warm_server *s, frame *f, const request *q,
                      warm_exit_fn on_exit, void *owner, int *pid) {
  int fds[MAX_SLOTS + 1], i;
  fds[0] = q->cwd;
  for (i = 0; i < q->count; i++)
    fds[i + 1] = q->child[i];
  if (++s->next_id == 0)
    s->next_id = 1;
  s->wait_id = s->next_id;
  memcpy(f->data + 8, &s->wait_id, sizeof s->wait_id);
  s->reply = 0;
  s->pending_exit = on_exit;
  s->pending_owner = owner;
  s->used = uv_now(s->pool->loop);
  if (send_frame(s, f, fds, q->count + 1) != 0) {
    server_lost(s);
    return -1;
  }
  run_until(s, has_reply, REPLY_TIMEOUT_MS);
  s->wait_id = 0;
  if (s->reply == FROM_STARTED) {
    *pid = s->reply_pid;
    return 1;
  }
  if (s->reply == FROM_MISMATCH)
    return 0;
  if (s->state != DEAD)
    uv_process_kill(&s->process, SIGKILL);
  server_lost(s);
  return -1;
}


/* Count the live servers of script, and find the least recently used one
 * without children. */
static int count_servers(warm_pool *pool, const char *script,
                         warm_server **idle) {
  warm_server *s;
  int n = 0;
  *idle = NULL;
  for (s = pool->servers; s; s = s->next) {
    if (s->state == DEAD || strcmp(s->script, script) != 0)
      continue;
    n++;
    if (s->nchildren == 0 && (*idle == NULL || s->used < (*idle)->used))
      *idle = s;
  }
  return n;
}


/* Give the host ends of the new child's pipes to their libuv streams and
 * close what the child has its own copies of. */
static void commit_request(request *q, uv_process_options_t *opt) {
  int i;
  for (i = 0; i < q->count; i++) {
    if (q->parent[i] < 0)
      continue;
    if (uv_pipe_open((uv_pipe_t *)opt->stdio[q->slot[i]].data.stream,
                     q->parent[i]) != 0)
      close(q->parent[i]);
  }
  close_request(q, 0);
}


int borglua__warm_spawn(warm_pool *pool, uv_process_options_t *opt,
                        warm_exit_fn on_exit, void *owner, int *pid,
                        const char **reason) {
  char script[PATH_MAX], line[SHEBANG_SIZE], *interp, *arg;
  char **env = call_env(opt);
  warm_server *s, *idle;
  request q;
  frame f;
  int via_env, r = 0;

  *reason = NULL;
  if (pool->closing || resolve_program(opt->file, env, script,
                                       sizeof script) != 0)
    return 0;
  if ((*reason = fallback_reason(pool, script)) != NULL)
    return 0;
  if (!python_script(script, line, &interp, &arg, &via_env)) {
    *reason = record_fallback(pool, script, "%s is not a Python script;"
                              " running it with exec", script);
    return 0;
  }
  if (open_request(&q, opt) != 0)
    return 0;
  build_spawn(&f, &q, opt);

  for (s = pool->servers; s && r == 0; s = s->next)
    if (s->state == READY && strcmp(s->script, script) == 0)
      r = ask_server(s, &f, &q, on_exit, owner, pid);
  if (r == 0 && count_servers(pool, script, &idle) >= MAX_SERVERS) {
    if (idle != NULL) {
      stop_server(idle);
    } else {
      snprintf(pool->message, sizeof pool->message, "%s: %d warm servers"
               " with other start-up variables are busy; running it with"
               " exec", script, MAX_SERVERS);
      *reason = pool->message;
      r = -1;
    }
  }
  if (r == 0) {
    s = start_server(pool, script, interp, arg, via_env, env, reason);
    r = s ? ask_server(s, &f, &q, on_exit, owner, pid) : -1;
  }
  free(f.data);
  if (r != 1) {
    close_request(&q, 1);
    if (*reason == NULL) {
      snprintf(pool->message, sizeof pool->message, "%s: the warm server"
               " failed; running it with exec", script);
      *reason = pool->message;
    }
    return 0;
  }
  commit_request(&q, opt);
  return 1;
}


/* ---- the pool ---------------------------------------------------------- */

warm_pool *borglua__warm_new(uv_loop_t *loop) {
  warm_pool *pool = calloc(1, sizeof *pool);
  if (pool != NULL)
    pool->loop = loop;
  return pool;
}


void borglua__warm_close(warm_pool *pool) {
  warm_server *s;
  pool->closing = 1;
  if (pool->open_servers == 0) {
    free_pool(pool);
    return;
  }
  for (s = pool->servers; s; s = s->next) {
    stop_server(s);
    if (!s->exited)
      uv_close((uv_handle_t *)&s->process, on_close);
    uv_close((uv_handle_t *)&s->timer, on_close);
    uv_close((uv_handle_t *)&s->backlog, on_close);
  }
}
