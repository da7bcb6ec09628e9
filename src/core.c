/*
 * core.c: the borg.core Lua module.
 *
 * Spawns programs with libuv, moves their bytes through pipes, splits
 * stdout and stderr into lines, enforces timeouts and forwards the host's
 * SIGINT, SIGTERM and SIGHUP to the children. Nothing in it is specific to
 * borg.
 *
 * Model: libuv callbacks never call Lua. They only append events (a line,
 * a chunk, the whole of stdout) to the process's queue; Lua pulls them
 * with proc:read(). So a Lua error can never unwind through uv_run, and
 * any number of processes can share one loop.
 *
 * Errors: misuse (a bad spawn table) raises a Lua error through luaL_*;
 * a failure to start the program returns nil, error name, message.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <asm/socket.h> /* SO_SNDBUFFORCE, which _POSIX_C_SOURCE hides */
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"

#include "core.h"
#include "warm.h"

#define LOOP_KEY "borg.core.loop"
#define PROC_MT "borg.core.process"

#define READ_SIZE 65536
/* Reading stops while this many bytes wait in a queue for Lua, and starts
 * again below RESUME_BYTES, so a slow consumer bounds host memory. */
#define PAUSE_BYTES (4u << 20)
#define RESUME_BYTES (1u << 20)
/* proc:write reports stdin as full once this many bytes wait to be
 * written, and a "writable" event follows when they drop to WRITE_LOW, so
 * a stdin source is read only as fast as the child consumes it. */
#define WRITE_HIGH (1u << 20)
#define WRITE_LOW (256u << 10)
#define STDIN_BUFFER (4 << 20)
/* borg writes each JSON line with a write of its own. When a read of
 * stdout lines brings less than PACE_BELOW bytes, reading rests for
 * PACE_MS, so that the next read takes many lines at once instead of
 * waking the host for each line. */
#define PACE_BELOW 4096
#define PACE_MS 1
#define DEFAULT_GRACE 5.0
/* After the host's first SIGINT, SIGTERM or SIGHUP, borg gets this long
 * to end by itself, because on SIGINT a create first writes a checkpoint
 * and a kill then would leave its lock behind. SIGTERM follows (unless
 * that was the signal), and SIGKILL after the usual grace. A second
 * signal is forwarded too, and the kill follows after the usual grace.
 * A third signal kills at once. */
#define INTERRUPT_GRACE 30.0
/* How long to keep reading after the child exited while another process
 * (a grandchild in another session) still has its pipes open. */
#define DRAIN_MS 1000
/* Maximum timer, about 31 years. A longer timeout means no timeout. */
#define MAX_TIMER_MS 1e12
#define MAX_STDIO 64
/* The signal a child gets when its host ends without stopping it (see
 * exec-shim.c). SIGTERM lets borg release its repository lock.
 * NOTE: nothing escalates to SIGKILL for a child that ignores it, and the
 * kernel sends it when the spawning thread ends, so a C host must not
 * spawn from a thread that exits before its children. */
#define PARENT_DEATH_SIGNAL SIGTERM

enum out_mode { OUT_WHOLE, OUT_LINES, OUT_CHUNKS, OUT_NULL, OUT_INHERIT };
enum ev_type { EV_STDOUT, EV_LINE, EV_STDERR, EV_WRITABLE };

typedef struct event {
  struct event *next;
  int type;
  int truncated;
  size_t len;
  char data[];
} event;

/* A growable byte buffer: a partial line, or the whole of stdout. */
typedef struct buffer {
  char *data;
  size_t len, cap;
  int overflow;
} buffer;

typedef struct core_loop core_loop;

typedef struct proc {
  core_loop *cl;
  uv_process_t process;
  uv_pipe_t in, out, err;
  uv_timer_t timer;
  uv_timer_t pace;          /* resumes reading stdout lines, see PACE_MS */
  struct proc *prev, *next; /* list of live processes */
  int pid;
  int open_handles;     /* libuv handles not yet closed */
  int in_open, out_open, err_open, timer_open, process_open, pace_open;
  int exited, timed_out, killed;
  int64_t exit_status;
  int term_signal;
  int out_mode;
  int paused;
  int orphan;           /* the Lua userdata is gone */
  size_t max_line;
  size_t max_stdout;    /* bytes kept of a whole stdout */
  int in_shutdown;
  int stdin_pipe;       /* stdin is a pipe from the host */
  size_t queued;        /* bytes waiting in the event queue */
  double grace;
  event *head, *tail;
  buffer outbuf, errbuf;
  char *readbuf[2];
  size_t write_pending; /* bytes handed to uv_write, not yet written */
  int write_error;
  int want_writable;    /* Lua waits for a "writable" event */
  int warm;             /* started by a warm server, not by uv_spawn */
} proc;

/* The host's signals that a running borg call forwards to its children. */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};
#define NFORWARDED 3

struct core_loop {
  uv_loop_t loop;
  proc *live;
  int nlive;
  uv_signal_t watchers[NFORWARDED];
  struct sigaction saved[NFORWARDED]; /* dispositions before the call */
  int watching[NFORWARDED];
  int signals_on;
  int stdin_pipes;             /* children whose stdin is our pipe */
  struct sigaction saved_pipe; /* SIGPIPE before the first of them */
  int interrupted;
  int host_signals; /* how many arrived since the last forget_interrupt */
  int dropping_signals; /* forget_interrupt drops queued signals */
  int closed;
  warm_pool *warm;             /* warm borg servers, made on first use */
  int shim_fd;        /* borglua-exec in memory, or -1 */
  char shim_path[32]; /* /proc/self/fd/N of shim_fd */
};


/* ---- buffers and events ------------------------------------------------ */

/* Append n bytes to b, keeping at most max bytes; returns 0 or -1. */
static int buffer_add(buffer *b, const char *s, size_t n, size_t max) {
  if (b->len + n > max) {
    b->overflow = 1;
    n = max > b->len ? max - b->len : 0;
  }
  if (n == 0)
    return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->len + n)
      cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL)
      return -1;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  return 0;
}


static void buffer_free(buffer *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}


static void queue_event(proc *p, int type, const char *s, size_t n,
                        int truncated) {
  event *e;
  if (p->orphan)
    return;
  e = malloc(sizeof *e + n + 1);
  if (e == NULL)
    return; /* NOTE: an event is dropped when memory runs out */
  e->next = NULL;
  e->type = type;
  e->truncated = truncated;
  e->len = n;
  memcpy(e->data, s, n);
  e->data[n] = '\0';
  if (p->tail)
    p->tail->next = e;
  else
    p->head = e;
  p->tail = e;
  p->queued += n;
}


static void free_events(proc *p) {
  event *e = p->head;
  while (e) {
    event *next = e->next;
    free(e);
    e = next;
  }
  p->head = p->tail = NULL;
  p->queued = 0;
}


/* Split data into lines at '\n'; the partial last line stays in b. */
static void split_lines(proc *p, buffer *b, int type, const char *s,
                        size_t n) {
  while (n > 0) {
    const char *nl = memchr(s, '\n', n);
    size_t take = nl ? (size_t)(nl - s) : n;
    buffer_add(b, s, take, p->max_line);
    if (!nl)
      return;
    queue_event(p, type, b->data ? b->data : "", b->len, b->overflow);
    b->len = 0;
    b->overflow = 0;
    s += take + 1;
    n -= take + 1;
  }
}


/* ---- process life ------------------------------------------------------ */

/* While the host feeds a child's stdin, a child that exits early must
 * not kill the host with SIGPIPE: the write fails with EPIPE instead.
 * The host's own disposition is restored when no such pipe is left, so
 * `borglua script | head` still ends when head does. */
static void hold_sigpipe(core_loop *cl) {
  struct sigaction ignore;
  if (cl->stdin_pipes++ > 0)
    return;
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &cl->saved_pipe);
}


/* Let the stdin socket hold STDIN_BUFFER bytes in flight instead of the
 * system's default (about 200 KiB), so borg reads large blocks and both
 * sides wake up less often. Above the system's limit only a privileged
 * host gets this size. Otherwise the default stays. */
static void widen_stdin(proc *p) {
  uv_os_fd_t fd;
  int size = STDIN_BUFFER;
  if (uv_fileno((uv_handle_t *)&p->in, &fd) != 0)
    return;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}


static void release_sigpipe(core_loop *cl) {
  if (--cl->stdin_pipes == 0)
    sigaction(SIGPIPE, &cl->saved_pipe, NULL);
}


static void maybe_free(proc *p) {
  if (p->open_handles > 0 || !p->orphan)
    return;
  free_events(p);
  buffer_free(&p->outbuf);
  buffer_free(&p->errbuf);
  free(p->readbuf[0]);
  free(p->readbuf[1]);
  free(p);
}


static void on_close(uv_handle_t *h) {
  proc *p = h->data;
  p->open_handles--;
  maybe_free(p);
}


/* Close a handle of p. uv_close closes a pipe's descriptor at once, so
 * SIGPIPE is given back here too rather than in on_close, which runs
 * only when the loop runs again. */
static void close_handle(uv_handle_t *h, int *open) {
  proc *p = h->data;
  if (*open) {
    *open = 0;
    if (h == (uv_handle_t *)&p->in && p->stdin_pipe)
      release_sigpipe(p->cl);
    uv_close(h, on_close);
  }
}


/* Close the stdout pipe and the timer that paces its reading. */
static void close_out(proc *p) {
  close_handle((uv_handle_t *)&p->out, &p->out_open);
  close_handle((uv_handle_t *)&p->pace, &p->pace_open);
}


static void unlink_live(proc *p) {
  core_loop *cl = p->cl;
  if (p->prev)
    p->prev->next = p->next;
  else if (cl->live == p)
    cl->live = p->next;
  if (p->next)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
  cl->nlive--;
}


/* Signal the child's whole process group; it leads its own session. */
static void kill_group(proc *p, int sig) {
  if (p->pid > 0 && !p->exited)
    uv_kill(-p->pid, sig);
}


static int finished(proc *p) {
  return p->exited && !p->out_open && !p->err_open;
}


static void finish_out(proc *p);
static void finish_err(proc *p);


/* Stop waiting for the pipes of a child that has exited. */
static void on_drain_timer(uv_timer_t *t) {
  proc *p = t->data;
  if (p->paused) {
    /* Lua has not read the queue yet and the pipes may still hold data,
     * so the clock starts again once reading resumes. */
    uv_timer_start(&p->timer, on_drain_timer, DRAIN_MS, 0);
    return;
  }
  finish_out(p);
  finish_err(p);
}


static void proc_exited(proc *p, int64_t status, int sig) {
  p->exited = 1;
  p->exit_status = status;
  p->term_signal = sig;
  unlink_live(p);
  /* Nothing reads the child's stdin any more: a source that had not
   * ended would otherwise keep the pipe, and SIGPIPE ignored, until the
   * garbage collector collects the process. */
  close_handle((uv_handle_t *)&p->in, &p->in_open);
  if (!p->out_open && !p->err_open) {
    close_handle((uv_handle_t *)&p->timer, &p->timer_open);
    return;
  }
  /* The leader is gone. Anything still holding our pipes is a stray: a
   * member of its group, which gets SIGKILL, or a process in another
   * session, which could keep the pipes open forever, so reading stops
   * after a short time. */
  uv_kill(-p->pid, SIGKILL);
  uv_timer_stop(&p->timer);
  uv_timer_start(&p->timer, on_drain_timer, DRAIN_MS, 0);
}


static void on_exit(uv_process_t *h, int64_t status, int sig) {
  proc *p = h->data;
  close_handle((uv_handle_t *)&p->process, &p->process_open);
  proc_exited(p, status, sig);
}


/* The exit report of a child that a warm server started. Until it comes,
 * it counts as an open handle, as the process handle does for uv_spawn. */
static void on_warm_exit(void *owner, int64_t status, int sig) {
  proc *p = owner;
  proc_exited(p, status, sig);
  p->open_handles--;
  maybe_free(p);
}


/* Return seconds as timer milliseconds, clamped to the timer's range. */
static uint64_t timer_ms(double seconds) {
  double ms = seconds * 1000;
  if (!(ms > 0))
    return 0;
  if (ms < 1)
    return 1; /* 0 would mean no timer at all */
  return ms > MAX_TIMER_MS ? (uint64_t)MAX_TIMER_MS : (uint64_t)ms;
}


static void on_kill_timer(uv_timer_t *t) {
  proc *p = t->data;
  kill_group(p, SIGKILL);
}


/* A wait is over (after the host's first signal, or proc:stop's delay):
 * ask borg with SIGTERM, which it handles at once by releasing its lock,
 * then kill it after the usual grace. */
static void on_term_timer(uv_timer_t *t) {
  proc *p = t->data;
  kill_group(p, SIGTERM);
  uv_timer_start(&p->timer, on_kill_timer, timer_ms(p->grace), 0);
}


static void on_timeout(uv_timer_t *t) {
  proc *p = t->data;
  p->timed_out = 1;
  kill_group(p, SIGTERM);
  uv_timer_start(&p->timer, on_kill_timer, timer_ms(p->grace), 0);
}


/* ---- reading ----------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  proc *p = h->data;
  int i = h == (uv_handle_t *)&p->out ? 0 : 1;
  (void)size;
  if (p->readbuf[i] == NULL)
    p->readbuf[i] = malloc(READ_SIZE);
  buf->base = p->readbuf[i];
  buf->len = p->readbuf[i] ? READ_SIZE : 0;
}


static void pause_if_full(proc *p) {
  if (p->queued < PAUSE_BYTES || p->paused)
    return;
  p->paused = 1;
  if (p->out_open)
    uv_read_stop((uv_stream_t *)&p->out);
  if (p->err_open)
    uv_read_stop((uv_stream_t *)&p->err);
}


/* Close the timer once the child has exited and both pipes are done. */
static void maybe_done(proc *p) {
  if (p->exited && !p->out_open && !p->err_open)
    close_handle((uv_handle_t *)&p->timer, &p->timer_open);
}


/* Queue what remains of stdout and close its pipe. */
static void finish_out(proc *p) {
  if (!p->out_open)
    return;
  if (p->out_mode == OUT_WHOLE)
    queue_event(p, EV_STDOUT, p->outbuf.data ? p->outbuf.data : "",
                p->outbuf.len, p->outbuf.overflow);
  else if (p->out_mode == OUT_LINES && p->outbuf.len > 0)
    queue_event(p, EV_LINE, p->outbuf.data, p->outbuf.len, p->outbuf.overflow);
  buffer_free(&p->outbuf);
  close_out(p);
  maybe_done(p);
}


/* Queue a last stderr line without newline and close its pipe. */
static void finish_err(proc *p) {
  if (!p->err_open)
    return;
  if (p->errbuf.len > 0)
    queue_event(p, EV_STDERR, p->errbuf.data, p->errbuf.len,
                p->errbuf.overflow);
  buffer_free(&p->errbuf);
  close_handle((uv_handle_t *)&p->err, &p->err_open);
  maybe_done(p);
}


static void on_read_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);


/* Read stdout lines again after a rest (see PACE_MS), unless the queue
 * is full and resume_if_drained restarts reading later. */
static void on_pace(uv_timer_t *t) {
  proc *p = t->data;
  if (p->out_open && !p->paused)
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read_out);
}


static void on_read_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  proc *p = s->data;
  if (n > 0) {
    switch (p->out_mode) {
    case OUT_WHOLE:
      buffer_add(&p->outbuf, buf->base, (size_t)n, p->max_stdout);
      break;
    case OUT_LINES:
      split_lines(p, &p->outbuf, EV_LINE, buf->base, (size_t)n);
      if ((size_t)n < PACE_BELOW && !p->exited && p->pace_open) {
        uv_read_stop(s);
        uv_timer_start(&p->pace, on_pace, PACE_MS, 0);
      }
      break;
    case OUT_CHUNKS:
      queue_event(p, EV_STDOUT, buf->base, (size_t)n, 0);
      break;
    }
    pause_if_full(p);
  } else if (n < 0) {
    finish_out(p);
  }
}


static void on_read_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  proc *p = s->data;
  if (n > 0) {
    split_lines(p, &p->errbuf, EV_STDERR, buf->base, (size_t)n);
    pause_if_full(p);
  } else if (n < 0) {
    finish_err(p);
  }
}


static void resume_if_drained(proc *p) {
  if (!p->paused || p->queued > RESUME_BYTES)
    return;
  p->paused = 0;
  if (p->out_open)
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read_out);
  if (p->err_open)
    uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read_err);
}


/* ---- signals to the host ----------------------------------------------- */

static void on_host_signal(uv_signal_t *h, int sig) {
  core_loop *cl = h->data;
  proc *p;
  double grace;
  if (cl->dropping_signals)
    return;
  if (!cl->interrupted)
    cl->interrupted = sig;
  cl->host_signals++;
  /* Forward the signal so borg ends cleanly and releases its locks; the
   * grace timer escalates to SIGKILL for a child that ignores it. */
  for (p = cl->live; p; p = p->next) {
    if (cl->host_signals >= 3) {
      kill_group(p, SIGKILL);
      continue;
    }
    kill_group(p, sig);
    if (p->timer_open && !p->timed_out) {
      grace = p->grace;
      if (cl->host_signals == 1 && grace < INTERRUPT_GRACE)
        grace = INTERRUPT_GRACE;
      uv_timer_stop(&p->timer);
      uv_timer_start(&p->timer, cl->host_signals == 1 && sig != SIGTERM
                     ? on_term_timer : on_kill_timer, timer_ms(grace), 0);
    }
  }
}


/* Catch SIGINT, SIGTERM and SIGHUP while children run. A signal that the
 * host ignores (nohup, a background job) stays ignored, and the host's
 * own handlers are saved so that stop_signals can put them back. */
static void start_signals(core_loop *cl) {
  int i;
  if (cl->signals_on)
    return;
  for (i = 0; i < NFORWARDED; i++) {
    struct sigaction sa;
    cl->watching[i] = 0;
    if (sigaction(forwarded[i], NULL, &sa) != 0 || sa.sa_handler == SIG_IGN)
      continue;
    cl->saved[i] = sa;
    if (uv_signal_start(&cl->watchers[i], on_host_signal, forwarded[i]) == 0)
      cl->watching[i] = 1;
  }
  cl->signals_on = 1;
}


/* Run the loop once without waiting, so that signals in libuv's queue
 * reach on_host_signal. The watchers are unreferenced, and uv_run returns
 * at once from a loop with no referenced handle, so they are referenced
 * for this one run. */
static void deliver_queued(core_loop *cl) {
  int i;
  for (i = 0; i < NFORWARDED; i++)
    if (cl->watching[i])
      uv_ref((uv_handle_t *)&cl->watchers[i]);
  uv_run(&cl->loop, UV_RUN_NOWAIT);
  for (i = 0; i < NFORWARDED; i++)
    if (cl->watching[i])
      uv_unref((uv_handle_t *)&cl->watchers[i]);
}


/* Give the signals back to the host once no child runs. A signal caught
 * just before the last child exited is still waiting in libuv's queue,
 * so the loop runs once first to deliver it rather than drop it. */
static void stop_signals(core_loop *cl) {
  int i;
  if (!cl->signals_on || cl->nlive > 0)
    return;
  deliver_queued(cl);
  if (cl->nlive > 0)
    return;
  for (i = 0; i < NFORWARDED; i++) {
    if (!cl->watching[i])
      continue;
    uv_signal_stop(&cl->watchers[i]);
    sigaction(forwarded[i], &cl->saved[i], NULL);
    cl->watching[i] = 0;
  }
  cl->signals_on = 0;
}


/* ---- the loop userdata ------------------------------------------------- */

static core_loop *get_loop(lua_State *L) {
  core_loop *cl;
  lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  cl = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (cl == NULL || cl->closed)
    luaL_error(L, "borg.core: the event loop is closed");
  return cl;
}


static void close_any(uv_handle_t *h, void *arg) {
  core_loop *cl = arg;
  proc *p;
  if (uv_is_closing(h))
    return;
  if (h->data == cl) {
    uv_close(h, NULL);
    return;
  }
  p = h->data;
  if (h == (uv_handle_t *)&p->out)
    close_handle(h, &p->out_open);
  else if (h == (uv_handle_t *)&p->err)
    close_handle(h, &p->err_open);
  else if (h == (uv_handle_t *)&p->in)
    close_handle(h, &p->in_open);
  else if (h == (uv_handle_t *)&p->timer)
    close_handle(h, &p->timer_open);
  else if (h == (uv_handle_t *)&p->pace)
    close_handle(h, &p->pace_open);
  else if (h == (uv_handle_t *)&p->process)
    close_handle(h, &p->process_open);
}


/* Terminate every live child, wait for them, and close the loop. Called
 * when the Lua state closes. */
static int loop_gc(lua_State *L) {
  core_loop *cl = lua_touserdata(L, 1);
  proc *p;
  if (cl->closed)
    return 0;
  uv_update_time(&cl->loop);
  for (p = cl->live; p; p = p->next) {
    kill_group(p, SIGTERM);
    if (p->timer_open) {
      uv_timer_stop(&p->timer);
      uv_timer_start(&p->timer, on_kill_timer,
                     timer_ms(p->grace), 0);
    }
  }
  while (cl->live)
    uv_run(&cl->loop, UV_RUN_ONCE);
  if (cl->warm)
    borglua__warm_close(cl->warm);
  stop_signals(cl);
  /* Pipes of children that exited while Lua did not read them may still
   * be open. Close every remaining handle so the loop can end. */
  uv_walk(&cl->loop, close_any, cl);
  uv_run(&cl->loop, UV_RUN_DEFAULT);
  uv_loop_close(&cl->loop);
  if (cl->shim_fd >= 0)
    close(cl->shim_fd);
  cl->closed = 1;
  return 0;
}


static core_loop *new_loop(lua_State *L) {
  int i;
  core_loop *cl = lua_newuserdatauv(L, sizeof *cl, 0);
  memset(cl, 0, sizeof *cl);
  if (uv_loop_init(&cl->loop) != 0)
    luaL_error(L, "borg.core: cannot initialise the libuv loop");
  /* Opened with the loop, so that the descriptor count of the host does
   * not change at its first spawn. */
  cl->shim_fd = borglua__shim_open(MAX_STDIO + 1, cl->shim_path,
                                   sizeof cl->shim_path);
  for (i = 0; i < NFORWARDED; i++) {
    uv_signal_init(&cl->loop, &cl->watchers[i]);
    cl->watchers[i].data = cl;
    uv_unref((uv_handle_t *)&cl->watchers[i]);
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return cl;
}


/* ---- spawn ------------------------------------------------------------- */

/* Allocate a NULL-terminated array of the strings in the sequence at index
 * idx, inside a Lua userdata so a later error cannot leak it. */
static char **string_array(lua_State *L, int idx, const char *what) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), i;
  char **v;
  if (n > 65536)
    luaL_error(L, "borg.core.spawn: %s has too many entries", what);
  v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    /* Strings only: a number converted here would not stay anchored. */
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING)
      luaL_error(L, "borg.core.spawn: %s[%d] is not a string", what, (int)i);
    s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
      luaL_error(L, "borg.core.spawn: %s[%d] contains a NUL byte", what,
                 (int)i);
    v[i - 1] = (char *)s; /* anchored: the table keeps the string alive */
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}


/* Return the string at idx; raise when it contains a NUL byte. */
static const char *checked_string(lua_State *L, int idx, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len)
    luaL_error(L, "borg.core.spawn: '%s' contains a NUL byte", what);
  return s;
}


/* Set close-on-exec on every descriptor of the host from 3 up that lacks
 * it, so a child inherits only what its stdio plan gives it: files that
 * Lua code opened with io.open or io.popen are not close-on-exec. Returns
 * the descriptors it changed (a malloc'd array ended by -1, or NULL), for
 * restore_fds to undo after the spawn. */
static int *hide_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  struct dirent *entry;
  int *changed = NULL, n = 0, cap = 0;
  if (dir == NULL)
    return NULL;
  while ((entry = readdir(dir)) != NULL) {
    int fd = atoi(entry->d_name), flags;
    if (fd < 3 || fd == dirfd(dir))
      continue;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC))
      continue;
    if (n + 1 >= cap) {
      int *grown = realloc(changed, sizeof(int) * (size_t)(cap ? cap * 2 : 16));
      if (grown == NULL)
        break;
      changed = grown;
      cap = cap ? cap * 2 : 16;
    }
    if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0)
      changed[n++] = fd;
  }
  closedir(dir);
  if (changed != NULL)
    changed[n] = -1;
  return changed;
}


/* Clear close-on-exec again on the descriptors hide_fds changed. */
static void restore_fds(int *changed) {
  int i;
  if (changed == NULL)
    return;
  for (i = 0; changed[i] >= 0; i++) {
    int flags = fcntl(changed[i], F_GETFD);
    if (flags >= 0)
      fcntl(changed[i], F_SETFD, flags & ~FD_CLOEXEC);
  }
  free(changed);
}


static int field_type(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  return lua_type(L, -1);
}


/* Check spec.fds ({[n] = data}) before anything is allocated. */
static void check_fds(lua_State *L, int fdsidx) {
  lua_pushnil(L);
  while (lua_next(L, fdsidx) != 0) {
    lua_Integer n;
    if (!lua_isinteger(L, -2) || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "borg.core.spawn: 'fds' maps numbers to strings");
    n = lua_tointeger(L, -2);
    if (n < 3 || n >= MAX_STDIO)
      luaL_error(L, "borg.core.spawn: fd %d is out of range", (int)n);
    if (lua_rawlen(L, -1) > 65536)
      luaL_error(L, "borg.core.spawn: data for fd %d is too long", (int)n);
    lua_pop(L, 1);
  }
}


/* Create a pipe for each extra descriptor in spec.fds: the data is written
 * in full and the write end closed before the child starts, so the child
 * reads it to end of file. Returns how many read ends it stored, or -1. */
static int setup_fds(lua_State *L, uv_stdio_container_t *stdio, int *count,
                     int fdsidx, int *readends) {
  int nread = 0;
  lua_pushnil(L);
  while (lua_next(L, fdsidx) != 0) {
    size_t len;
    const char *data = lua_tolstring(L, -1, &len);
    int n = (int)lua_tointeger(L, -2);
    uv_file fds[2];
    lua_pop(L, 1);
    if (uv_pipe(fds, 0, 0) != 0) {
      lua_pop(L, 1);
      return -1 - nread;
    }
    /* check_fds limits the data to 64 KiB, the capacity of a new Linux
     * pipe, so this write cannot block. */
    if (len > 0 && write(fds[1], data, len) != (ssize_t)len) {
      close(fds[0]);
      close(fds[1]);
      lua_pop(L, 1);
      return -1 - nread;
    }
    close(fds[1]);
    stdio[n].flags = UV_INHERIT_FD;
    stdio[n].data.fd = fds[0];
    readends[nread++] = fds[0];
    if (n + 1 > *count)
      *count = n + 1;
  }
  return nread;
}


/* Route the spawn through borglua-exec, which sets the parent-death
 * signal and then runs the program: opt->file and opt->args become the
 * shim's, and the write end of its report pipe becomes stdio slot
 * *count. Pushes the new argument array and its strings. Returns the
 * read end of the report pipe and stores the write end in *write_end;
 * returns -1 when the system cannot run the shim (opt unchanged) and -2
 * when no pipe could be made. Raises a Lua error only for memory. */
static int use_shim(lua_State *L, core_loop *cl, uv_process_options_t *opt,
                    uv_stdio_container_t *stdio, int *count, int *write_end) {
  uv_file fds[2];
  char **args;
  int n = 0, i;
  if (cl->shim_fd < 0)
    return -1;
  while (opt->args[n] != NULL)
    n++;
  args = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 6), 0);
  args[0] = "borglua-exec";
  args[1] = (char *)lua_pushfstring(L, "%d", (int)getpid());
  args[2] = (char *)lua_pushfstring(L, "%d", PARENT_DEATH_SIGNAL);
  args[3] = (char *)lua_pushfstring(L, "%d", *count);
  args[4] = (char *)opt->file;
  for (i = 0; i <= n; i++)
    args[5 + i] = opt->args[i];
  if (uv_pipe(fds, 0, 0) != 0)
    return -2;
  stdio[*count].flags = UV_INHERIT_FD;
  stdio[*count].data.fd = fds[1];
  (*count)++;
  opt->file = cl->shim_path;
  opt->args = args;
  *write_end = fds[1];
  return fds[0];
}


/* Wait for a shim that could not start the program (it exits at once),
 * release the process's pipes, and push nil, error name, message. */
static int late_spawn_error(lua_State *L, proc *p, int err) {
  close_out(p);
  close_handle((uv_handle_t *)&p->err, &p->err_open);
  close_handle((uv_handle_t *)&p->in, &p->in_open);
  while (!p->exited)
    uv_run(&p->cl->loop, UV_RUN_ONCE);
  stop_signals(p->cl);
  lua_pushnil(L);
  lua_pushstring(L, uv_err_name(-err));
  lua_pushstring(L, uv_strerror(-err));
  return 3;
}


static const char *const out_modes[] = {"whole", "lines", "chunks", "null",
                                        "inherit", NULL};


/* Return 0 when the environment variable BORGLUA_WARM turns warm mode
 * off (0, no, off or false). */
static int warm_allowed(void) {
  static const char *const off[] = {"0", "no", "off", "false", NULL};
  const char *value = getenv("BORGLUA_WARM");
  int i;
  for (i = 0; value && off[i]; i++)
    if (strcmp(value, off[i]) == 0)
      return 0;
  return 1;
}


/* Start p through a warm server of its program when one can serve it.
 * Returns 1 when it did; otherwise *reason may explain why not. */
static int spawn_warm(core_loop *cl, proc *p, uv_process_options_t *opt,
                      const char **reason) {
  if (!warm_allowed())
    return 0;
  if (cl->warm == NULL)
    cl->warm = borglua__warm_new(&cl->loop);
  if (cl->warm == NULL ||
      !borglua__warm_spawn(cl->warm, opt, on_warm_exit, p, &p->pid, reason))
    return 0;
  p->warm = 1;
  p->open_handles++; /* the exit report */
  return 1;
}


/* core.spawn{ file=, args={...}, env={"K=V",...}, cwd=,
 * stdin="null"|"pipe"|"inherit", stdout="whole"|"lines"|"chunks"|"null"|
 * "inherit", stderr="pipe"|"inherit", fds={[n]=data}, timeout=s, grace=s,
 * max_line=n, warm=bool } -> process | nil, errname, message
 * "inherit" hands the host's own descriptor to the child unchanged. With
 * warm, a Python borg program runs as a child of a warm server. */
static int core_spawn(lua_State *L) {
  core_loop *cl = get_loop(L);
  uv_process_options_t opt;
  uv_stdio_container_t stdio[MAX_STDIO + 1]; /* + the shim's report */
  int readends[MAX_STDIO];
  int nread, count = 3, r, i, stdin_pipe = 0, stdin_inherit = 0;
  int stderr_inherit = 0, warm;
  const char *warm_reason = NULL;
  int report = -1, report_end = -1, shim_error = 0, tried = 0;
  double timeout = 0;
  proc *p, **ud;

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (cl->interrupted)
    return luaL_error(L, "borg.core.spawn: the host was interrupted");
  memset(&opt, 0, sizeof opt);
  memset(stdio, 0, sizeof stdio);

  if (field_type(L, 1, "file") != LUA_TSTRING)
    return luaL_error(L, "borg.core.spawn: 'file' must be a string");
  opt.file = checked_string(L, -1, "file");            /* 2: file */
  if (field_type(L, 1, "args") != LUA_TTABLE)          /* 3: args */
    return luaL_error(L, "borg.core.spawn: 'args' must be a table");
  opt.args = string_array(L, 3, "args");               /* 4 */
  if (opt.args[0] == NULL)
    return luaL_error(L, "borg.core.spawn: 'args' is empty");
  if (field_type(L, 1, "env") == LUA_TTABLE)           /* 5: env */
    opt.env = string_array(L, 5, "env");               /* 6 */
  else
    lua_pushnil(L);
  if (field_type(L, 1, "cwd") == LUA_TSTRING)          /* 7: cwd */
    opt.cwd = checked_string(L, -1, "cwd");
  lua_getfield(L, 1, "stdin");                         /* 8: stdin */
  stdin_pipe = lua_isstring(L, -1) &&
               strcmp(lua_tostring(L, -1), "pipe") == 0;
  stdin_inherit = lua_isstring(L, -1) &&
                  strcmp(lua_tostring(L, -1), "inherit") == 0;
  lua_getfield(L, 1, "stdout");                        /* 9: stdout */
  r = luaL_checkoption(L, 9, "whole", out_modes);
  if (field_type(L, 1, "timeout") == LUA_TNUMBER)      /* 10 */
    timeout = lua_tonumber(L, -1);
  if (field_type(L, 1, "fds") == LUA_TTABLE)           /* 11: fds */
    check_fds(L, 11);
  lua_getfield(L, 1, "stderr");
  stderr_inherit = lua_isstring(L, -1) &&
                   strcmp(lua_tostring(L, -1), "inherit") == 0;
  lua_pop(L, 1);

  p = calloc(1, sizeof *p);
  if (p == NULL)
    return luaL_error(L, "borg.core.spawn: out of memory");
  p->cl = cl;
  p->out_mode = r;
  p->grace = DEFAULT_GRACE;
  p->max_line = 1u << 20;
  if (field_type(L, 1, "grace") == LUA_TNUMBER)        /* 12 */
    p->grace = lua_tonumber(L, -1);
  if (field_type(L, 1, "max_line") == LUA_TNUMBER && lua_tointeger(L, -1) > 0)
    p->max_line = (size_t)lua_tointeger(L, -1);        /* 13 */
  p->max_stdout = (size_t)-1;
  if (field_type(L, 1, "max_stdout") == LUA_TNUMBER && lua_tointeger(L, -1) > 0)
    p->max_stdout = (size_t)lua_tointeger(L, -1);      /* 14 */
  lua_pop(L, 1);
  warm = lua_getfield(L, 1, "warm") != LUA_TNIL && lua_toboolean(L, -1);
  lua_pop(L, 1);
  ud = lua_newuserdatauv(L, sizeof *ud, 1);            /* 14: process */
  *ud = p;
  luaL_setmetatable(L, PROC_MT);
  p->orphan = 0;

  uv_pipe_init(&cl->loop, &p->out, 0);
  uv_pipe_init(&cl->loop, &p->err, 0);
  uv_pipe_init(&cl->loop, &p->in, 0);
  uv_timer_init(&cl->loop, &p->timer);
  uv_timer_init(&cl->loop, &p->pace);
  p->out.data = p->err.data = p->in.data = p->timer.data = p->pace.data = p;
  p->process.data = p;
  p->out_open = p->err_open = p->in_open = p->timer_open = p->pace_open = 1;
  p->open_handles = 5;

  stdio[0].flags = stdin_pipe ? UV_CREATE_PIPE | UV_READABLE_PIPE : UV_IGNORE;
  stdio[0].data.stream = (uv_stream_t *)&p->in;
  if (stdin_inherit) {
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = 0;
  }
  if (p->out_mode == OUT_NULL) {
    stdio[1].flags = UV_IGNORE;
  } else if (p->out_mode == OUT_INHERIT) {
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
  } else {
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
  }
  if (stderr_inherit) {
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
  } else {
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
  }
  for (i = 3; i < MAX_STDIO; i++)
    stdio[i].flags = UV_IGNORE;
  nread = 0;
  if (lua_istable(L, 11))
    nread = setup_fds(L, stdio, &count, 11, readends);

  opt.stdio = stdio;
  opt.stdio_count = count;
  opt.exit_cb = on_exit;
  /* A new session: the child has no controlling terminal, so a prompt
   * that opens /dev/tty fails at once instead of waiting forever. */
  opt.flags = UV_PROCESS_DETACHED;
  /* Catch the host's signals before the child runs: a signal sent as
   * soon as the child shows up must reach it, not end the host. */
  start_signals(cl);
  if (nread < 0) {
    for (i = 0; i < -1 - nread; i++)
      close(readends[i]);
    r = UV_EMFILE;
  } else if (warm && spawn_warm(cl, p, &opt, &warm_reason)) {
    r = 0;
  } else {
    /* An exec'd child starts through the parent-death shim, so it ends
     * with the host even when the host is killed. */
    report = use_shim(L, cl, &opt, stdio, &count, &report_end);
    opt.stdio_count = count;
    if (report == -2) {
      r = UV_EMFILE;
    } else {
      int *hidden = hide_fds();
      tried = 1;
      r = uv_spawn(&cl->loop, &p->process, &opt);
      restore_fds(hidden);
    }
  }
  for (i = 0; i < nread; i++)
    close(readends[i]);
  if (report_end >= 0)
    close(report_end);
  if (report >= 0) {
    /* Blocks until the shim has exec'd the program or failed to. */
    if (r == 0)
      shim_error = borglua__shim_result(report);
    close(report);
  }

  if (r != 0) {
    p->exited = 1;
    close_out(p);
    close_handle((uv_handle_t *)&p->err, &p->err_open);
    close_handle((uv_handle_t *)&p->in, &p->in_open);
    close_handle((uv_handle_t *)&p->timer, &p->timer_open);
    /* uv_spawn initialised the process handle even though it failed */
    if (tried) {
      p->open_handles++;
      uv_close((uv_handle_t *)&p->process, on_close);
    }
    uv_run(&cl->loop, UV_RUN_NOWAIT);
    stop_signals(cl);
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(r));
    lua_pushstring(L, uv_strerror(r));
    return 3;
  }
  if (!p->warm) {
    p->open_handles++; /* the process handle */
    p->process_open = 1;
    p->pid = p->process.pid;
  }
  if (warm_reason != NULL) {
    lua_pushstring(L, warm_reason);
    lua_setiuservalue(L, 14, 1);
  }
  if (stdin_pipe) {
    p->stdin_pipe = 1;
    hold_sigpipe(cl);
    widen_stdin(p);
  } else {
    close_handle((uv_handle_t *)&p->in, &p->in_open);
  }
  if (p->out_mode == OUT_NULL || p->out_mode == OUT_INHERIT)
    close_out(p);
  else
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read_out);
  if (stderr_inherit)
    close_handle((uv_handle_t *)&p->err, &p->err_open);
  else
    uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read_err);
  /* The loop's clock stands still while Lua runs without the loop, so a
   * timeout counted from it could end at once. */
  uv_update_time(&cl->loop);
  if (timer_ms(timeout) > 0)
    uv_timer_start(&p->timer, on_timeout, timer_ms(timeout), 0);

  p->next = cl->live;
  if (cl->live)
    cl->live->prev = p;
  cl->live = p;
  cl->nlive++;
  /* A signal caught while a warm server was being started or asked came
   * before this child was in the list, so it gets that signal now. */
  if (cl->interrupted) {
    kill_group(p, cl->interrupted);
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, on_kill_timer, timer_ms(p->grace), 0);
  }
  if (shim_error != 0)
    return late_spawn_error(L, p, shim_error);
  lua_pushvalue(L, 14);
  return 1;
}


/* ---- process methods --------------------------------------------------- */

static proc *check_proc(lua_State *L) {
  proc **ud = luaL_checkudata(L, 1, PROC_MT);
  if (*ud == NULL)
    luaL_error(L, "borg.core: the process is closed");
  return *ud;
}


static const char *const ev_names[] = {"stdout", "line", "stderr",
                                       "writable"};


/* Push the next queued event (type, data, truncated) and return 3, or
 * return 0 when none is queued. */
static int pop_event(lua_State *L, proc *p) {
  event *e = p->head;
  if (e == NULL)
    return 0;
  /* Unlink first: a push may run the garbage collector, and a finalizer
   * may read from this process again. */
  p->head = e->next;
  if (p->head == NULL)
    p->tail = NULL;
  p->queued -= e->len;
  lua_pushstring(L, ev_names[e->type]);
  lua_pushlstring(L, e->data, e->len);
  lua_pushboolean(L, e->truncated);
  free(e); /* NOTE: leaked when a push above runs out of memory */
  resume_if_drained(p);
  return 3;
}


/* Push the exit report: "exit", status, signal, timed_out. */
static int push_exit(lua_State *L, proc *p) {
  lua_pushstring(L, "exit");
  lua_pushinteger(L, (lua_Integer)p->exit_status);
  lua_pushinteger(L, p->term_signal);
  lua_pushboolean(L, p->timed_out);
  return 4;
}


/* proc:read([block]) -> "stdout"|"line"|"stderr"|"writable", data, truncated
 *                     | "exit", status, signal, timed_out | nil
 * With block, runs the loop until this process has something to report. */
static int proc_read(lua_State *L) {
  proc *p = check_proc(L);
  int block = lua_toboolean(L, 2);
  for (;;) {
    int n = pop_event(L, p);
    if (n)
      return n;
    if (finished(p)) {
      stop_signals(p->cl);
      return push_exit(L, p);
    }
    if (!block)
      return 0;
    uv_run(&p->cl->loop, UV_RUN_ONCE);
  }
}


/* A write request and its copy of the data, freed together. */
typedef struct write_req {
  uv_write_t req;
  size_t len;
  char data[];
} write_req;


static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  proc *p = req->data;
  if (status < 0)
    p->write_error = status;
  p->write_pending -= w->len;
  free(w);
  /* After close_stdin Lua writes no more, so it needs no event. */
  if (p->want_writable && !p->in_shutdown &&
      (p->write_pending <= WRITE_LOW || status < 0)) {
    p->want_writable = 0;
    queue_event(p, EV_WRITABLE, "", 0, 0);
  }
}


/* proc:write(data) -> bytes still pending, full | nil, errname
 * Queues data for the child's stdin without blocking. When full is true,
 * the caller should write no more until proc:read reports "writable". */
static int proc_write(lua_State *L) {
  proc *p = check_proc(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  write_req *w;
  uv_buf_t buf;
  int r;

  luaL_argcheck(L, len <= 0x40000000, 2, "more than 1 GiB in one write");
  if (!p->in_open || p->in_shutdown || p->write_error) {
    lua_pushnil(L);
    lua_pushstring(L, p->write_error ? uv_err_name(p->write_error)
                                     : "EPIPE");
    return 2;
  }

  /* With nothing queued, write what the pipe takes at once straight from
   * the Lua string. Only the rest is copied and queued. */
  if (p->write_pending == 0) {
    buf = uv_buf_init((char *)s, (unsigned)len);
    r = uv_try_write((uv_stream_t *)&p->in, &buf, 1);
    if (r < 0 && r != UV_EAGAIN) {
      lua_pushnil(L);
      lua_pushstring(L, uv_err_name(r));
      return 2;
    }
    if (r > 0) {
      s += r;
      len -= (size_t)r;
    }
    if (len == 0) {
      lua_pushinteger(L, 0);
      lua_pushboolean(L, p->want_writable);
      return 2;
    }
  }

  w = malloc(sizeof *w + len);
  if (w == NULL)
    return luaL_error(L, "borg.core: out of memory");
  w->len = len;
  memcpy(w->data, s, len);
  buf = uv_buf_init(w->data, (unsigned)len);
  w->req.data = p;
  r = uv_write(&w->req, (uv_stream_t *)&p->in, &buf, 1, on_write);
  if (r != 0) {
    free(w);
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(r));
    return 2;
  }

  p->write_pending += len;
  if (p->write_pending >= WRITE_HIGH)
    p->want_writable = 1;
  lua_pushinteger(L, (lua_Integer)p->write_pending);
  lua_pushboolean(L, p->want_writable);
  return 2;
}


/* proc:pending() -> bytes queued for stdin and not yet written */
static int proc_pending(lua_State *L) {
  proc *p = check_proc(L);
  lua_pushinteger(L, (lua_Integer)p->write_pending);
  return 1;
}


static void on_shutdown(uv_shutdown_t *req, int status) {
  proc *p = req->data;
  (void)status;
  free(req);
  close_handle((uv_handle_t *)&p->in, &p->in_open);
}


/* proc:close_stdin(): end of input for the child, once the data queued
 * by proc:write has been written. */
static int proc_close_stdin(lua_State *L) {
  proc *p = check_proc(L);
  uv_shutdown_t *req;
  if (!p->in_open || p->in_shutdown)
    return 0;
  p->in_shutdown = 1;
  req = malloc(sizeof *req);
  if (req != NULL) {
    req->data = p;
    if (uv_shutdown(req, (uv_stream_t *)&p->in, on_shutdown) == 0)
      return 0;
    free(req);
  }
  close_handle((uv_handle_t *)&p->in, &p->in_open);
  return 0;
}


/* proc:kill([signal]): signal the child's process group (default
 * SIGTERM); a later SIGKILL follows after the grace period. */
static int proc_kill(lua_State *L) {
  proc *p = check_proc(L);
  int sig = (int)luaL_optinteger(L, 2, SIGTERM);
  kill_group(p, sig);
  if (!p->exited && p->timer_open && sig != SIGKILL && !p->killed) {
    p->killed = 1;
    uv_update_time(&p->cl->loop);
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, on_kill_timer,
                   timer_ms(p->grace), 0);
  }
  return 0;
}


/* proc:stop(delay): give the child delay seconds to end by itself, then
 * SIGTERM its process group, and SIGKILL after the grace period. */
static int proc_stop(lua_State *L) {
  proc *p = check_proc(L);
  double delay = luaL_checknumber(L, 2);
  if (!p->exited && p->timer_open && !p->killed) {
    p->killed = 1;
    uv_update_time(&p->cl->loop);
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, on_term_timer, timer_ms(delay), 0);
  }
  return 0;
}


/* proc:warm() -> true when a warm server started the process; else false
 * and, when warm mode was asked for and could not be used, the reason. */
static int proc_warm(lua_State *L) {
  proc *p = check_proc(L);
  lua_pushboolean(L, p->warm);
  lua_getiuservalue(L, 1, 1);
  return 2;
}


static int proc_pid(lua_State *L) {
  proc *p = check_proc(L);
  lua_pushinteger(L, p->pid);
  return 1;
}


/* Detach the C process from its userdata: a running child is terminated
 * and reaped by the loop later. */
static int proc_gc(lua_State *L) {
  proc **ud = luaL_checkudata(L, 1, PROC_MT);
  proc *p = *ud;
  if (p == NULL)
    return 0;
  *ud = NULL;
  p->orphan = 1;
  if (!p->exited) {
    kill_group(p, SIGTERM);
    uv_update_time(&p->cl->loop);
    if (p->timer_open) {
      uv_timer_stop(&p->timer);
      uv_timer_start(&p->timer, on_kill_timer,
                     timer_ms(p->grace), 0);
    }
  }
  close_handle((uv_handle_t *)&p->in, &p->in_open);
  free_events(p);
  /* Lua no longer reads the queue, so drain the pipes to end of file and
   * the child never blocks on a full pipe. */
  p->paused = 1;
  resume_if_drained(p);
  maybe_free(p);
  return 0;
}


/* ---- module functions -------------------------------------------------- */

/* core.step(): run the loop once, waiting for at least one event. */
static int core_step(lua_State *L) {
  core_loop *cl = get_loop(L);
  lua_pushboolean(L, uv_run(&cl->loop, UV_RUN_ONCE) != 0);
  return 1;
}


/* core.interrupted() -> signal number that interrupted the host, or nil */
static int core_interrupted(lua_State *L) {
  core_loop *cl = get_loop(L);
  if (cl->interrupted == 0)
    return 0;
  lua_pushinteger(L, cl->interrupted);
  return 1;
}


/* core.forget_interrupt(): clear the signal that interrupted the host,
 * so borg calls run again. The prompt does this after each chunk: Ctrl-C
 * stops the borg call of one chunk, not every later one. */
static int core_forget_interrupt(lua_State *L) {
  core_loop *cl = get_loop(L);
  /* A signal caught while a child ran (a mount lives on) and not yet
   * handled belongs to the chunk that is over: drop it, unforwarded. */
  if (cl->signals_on) {
    cl->dropping_signals = 1;
    deliver_queued(cl);
    cl->dropping_signals = 0;
  }
  cl->interrupted = 0;
  cl->host_signals = 0;
  return 0;
}


/* core.live() -> number of children not yet reaped */
static int core_live(lua_State *L) {
  lua_pushinteger(L, get_loop(L)->nlive);
  return 1;
}


/* core.environ() -> { NAME = value, ... } of the host's environment */
static int core_environ(lua_State *L) {
  extern char **environ;
  char **e;
  lua_newtable(L);
  for (e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL || eq == *e)
      continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  return 1;
}


/* A timer that core.sleep runs the loop for. */
typedef struct sleeper {
  uv_timer_t timer;
  int fired, closed;
} sleeper;


static void on_sleep_timer(uv_timer_t *t) {
  ((sleeper *)t->data)->fired = 1;
}


static void on_sleep_close(uv_handle_t *h) {
  ((sleeper *)h->data)->closed = 1;
}


/* core.sleep(seconds): run the loop that long, so children's output keeps
 * flowing into their queues; returns early when a signal interrupted the
 * host. */
static int core_sleep(lua_State *L) {
  core_loop *cl = get_loop(L);
  double seconds = luaL_checknumber(L, 1);
  sleeper z;
  memset(&z, 0, sizeof z);
  uv_timer_init(&cl->loop, &z.timer);
  z.timer.data = &z;
  uv_timer_start(&z.timer, on_sleep_timer,
                 seconds > 0 ? timer_ms(seconds) : 0, 0);
  while (!z.fired && !cl->interrupted)
    uv_run(&cl->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&z.timer, on_sleep_close);
  while (!z.closed)
    uv_run(&cl->loop, UV_RUN_ONCE);
  return 0;
}


/* core.device(path) -> device number, inode | nil, errname, message
 * A directory whose device differs from its parent's is a mount point. */
static int core_device(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(-e));
    lua_pushstring(L, strerror(e));
    return 3;
  }
  lua_pushinteger(L, (lua_Integer)st.st_dev);
  lua_pushinteger(L, (lua_Integer)st.st_ino);
  return 2;
}


/* core.children_cpu() -> processor seconds (user + system) used by all
 * the children of this process that have been reaped, and by their own
 * reaped descendants. The difference around one child's run is that
 * child's processor time, when no other child ends meanwhile. */
static int core_children_cpu(lua_State *L) {
  struct rusage usage;
  if (getrusage(RUSAGE_CHILDREN, &usage) != 0)
    return luaL_error(L, "borg.core.children_cpu: %s", strerror(errno));
  lua_pushnumber(L, (lua_Number)usage.ru_utime.tv_sec +
                        (lua_Number)usage.ru_utime.tv_usec / 1e6 +
                        (lua_Number)usage.ru_stime.tv_sec +
                        (lua_Number)usage.ru_stime.tv_usec / 1e6);
  return 1;
}


/* core.now() -> monotonic time in seconds */
static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}


/* core.realpath(path) -> absolute path with symbolic links resolved
 *                       | nil, message */
static int core_realpath(lua_State *L) {
  core_loop *cl = get_loop(L);
  const char *path = luaL_checkstring(L, 1);
  uv_fs_t req;
  int r = uv_fs_realpath(&cl->loop, &req, path, NULL); /* synchronous */
  if (r < 0) {
    uv_fs_req_cleanup(&req);
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(r));
    return 2;
  }
  /* NOTE: the result leaks if this push runs out of memory */
  lua_pushstring(L, req.ptr);
  uv_fs_req_cleanup(&req);
  return 1;
}


/* core.isatty(fd) -> boolean */
static int core_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}


/* core.terminal_width(fd) -> columns of the terminal on fd, or nil */
static int core_terminal_width(lua_State *L) {
  struct winsize size;
  int fd = (int)luaL_checkinteger(L, 1);
  if (ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0)
    return 0;
  lua_pushinteger(L, size.ws_col);
  return 1;
}


static const luaL_Reg proc_methods[] = {
  {"close_stdin", proc_close_stdin},
  {"kill", proc_kill},
  {"pending", proc_pending},
  {"pid", proc_pid},
  {"read", proc_read},
  {"warm", proc_warm},
  {"stop", proc_stop},
  {"write", proc_write},
  {NULL, NULL}
};


static const luaL_Reg core_functions[] = {
  {"children_cpu", core_children_cpu},
  {"device", core_device},
  {"environ", core_environ},
  {"forget_interrupt", core_forget_interrupt},
  {"interrupted", core_interrupted},
  {"isatty", core_isatty},
  {"live", core_live},
  {"now", core_now},
  {"realpath", core_realpath},
  {"sleep", core_sleep},
  {"spawn", core_spawn},
  {"step", core_step},
  {"terminal_width", core_terminal_width},
  {NULL, NULL}
};


/* Open /dev/null on any of descriptors 0-2 that the host started without:
 * libuv would otherwise take such a number for its own descriptors, and
 * it aborts when it closes a descriptor below 3. open() returns the
 * lowest free number, which is fd itself since all lower ones are open. */
static void open_std_fds(void) {
  int fd;
  for (fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
        open("/dev/null", O_RDWR) < 0)
      return;
}


int borglua__open_core(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  if (lua_isnil(L, -1)) {
    open_std_fds();
    new_loop(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);
  }
  lua_pop(L, 1);

  if (luaL_newmetatable(L, PROC_MT)) {
    luaL_newlib(L, proc_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, proc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, proc_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_functions);
  return 1;
}
