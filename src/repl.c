/*
 * repl.c: the interactive prompt, on libedit.
 *
 * Each input line is added to the chunk being read; the chunk runs once
 * it compiles, first as an expression ("return " .. chunk, so results
 * print without "="), else as statements. A chunk that ends too early
 * (a syntax error at <eof>) waits for more lines under the ">> " prompt,
 * as lua.c does. Results and errors are shown by borg.repl's show and
 * show_error; Tab calls its complete. History is kept in
 * $XDG_STATE_HOME/borglua/history (default ~/.local/state/borglua/history)
 * and written after every chunk, so a killed session keeps it too.
 *
 * Ctrl-C at the prompt drops the line being typed; during a borg call it
 * stops borg (see core.c). Ctrl-D on an empty line ends the prompt.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <histedit.h>

#include "lua.h"
#include "lauxlib.h"

#include "borglua.h"
#include "core.h"
#include "repl.h"

#define HISTORY_SIZE 1000
#define PROMPT "> "
#define PROMPT_MORE ">> "

/* The state of one prompt session, reached from libedit's callbacks
 * through EL_CLIENTDATA. It lives on the stack of borglua__repl. */
typedef struct session {
  lua_State *L;
  EditLine *el;
  History *hist;
  int module;         /* stack index of the borg.repl table */
  int pending;        /* stack index of the unfinished chunk (a string) */
  const char *prompt;
  char history_path[4096];
} session;


static session *get_session(EditLine *el) {
  session *s = NULL;
  el_get(el, EL_CLIENTDATA, &s);
  return s;
}


static char *prompt_text(EditLine *el) {
  return (char *)get_session(el)->prompt;
}


/* Interrupts a blocking read at the prompt; the read then fails with
 * EINTR and the loop drops the line. */
static void on_prompt_interrupt(int sig) {
  (void)sig;
}


/* Call borg.repl's function `name` in protected mode with the nargs
 * values on top of the stack, leaving nresults values. When it fails,
 * which is a bug of borg.repl, print the message and leave nils. */
static void call_module(session *s, const char *name, int nargs,
                        int nresults) {
  lua_State *L = s->L;
  int i;
  lua_getfield(L, s->module, name);
  lua_insert(L, -nargs - 1);
  if (lua_pcall(L, nargs, nresults, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "borglua: borg.repl.%s: %s\n", name,
            msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
    for (i = 0; i < nresults; i++)
      lua_pushnil(L);
  }
}


/* libedit's Tab function: completes the word before the cursor, or lists
 * the candidates when several remain. Raises only when memory runs out. */
static unsigned char complete(EditLine *el, int ch) {
  session *s = get_session(el);
  lua_State *L = s->L;
  const LineInfo *line = el_line(el);
  int columns = 80;
  const char *insert, *listing;
  unsigned char result = CC_REFRESH;
  (void)ch;

  el_get(el, EL_GETTC, "co", &columns, (void *)NULL);
  lua_pushvalue(L, s->pending);
  lua_pushlstring(L, line->buffer, (size_t)(line->cursor - line->buffer));
  lua_concat(L, 2);
  lua_pushinteger(L, columns > 0 ? columns : 80);
  call_module(s, "complete", 2, 2);
  /* stack: insert, listing */
  insert = lua_tostring(L, -2);
  listing = lua_tostring(L, -1);
  if (insert != NULL && insert[0] != '\0') {
    if (el_insertstr(el, insert) == -1)
      result = CC_ERROR;
  } else if (listing != NULL) {
    fprintf(stdout, "\n%s\n", listing);
    fflush(stdout);
    result = CC_REDISPLAY;
  } else {
    result = CC_ERROR; /* nothing matches: libedit beeps */
  }
  lua_pop(L, 2);
  return result;
}


/* Make each missing directory of path (up to its last slash), mode
 * 0700. Returns 0 or -1 with errno set. */
static int make_parents(const char *path) {
  char dir[4096];
  char *p;
  size_t len = strlen(path);
  if (len >= sizeof dir)
    return errno = ENAMETOOLONG, -1;
  memcpy(dir, path, len + 1);
  for (p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  return 0;
}


/* Set s->history_path from XDG_STATE_HOME or HOME; returns 0, or -1
 * when neither is set (history is then not kept). */
static int find_history(session *s) {
  const char *state = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  int n;
  /* The XDG base directory specification ignores a relative path. */
  if (state != NULL && state[0] == '/')
    n = snprintf(s->history_path, sizeof s->history_path,
                 "%s/borglua/history", state);
  else if (home != NULL && home[0] != '\0')
    n = snprintf(s->history_path, sizeof s->history_path,
                 "%s/.local/state/borglua/history", home);
  else
    return -1;
  if (n < 0 || (size_t)n >= sizeof s->history_path)
    return -1;
  return 0;
}


/* Write the history file, mode 0600; a failure is printed once.
 * NOTE: the whole file is rewritten, so of two sessions running at once
 * the one that saves last drops the other's new entries. */
static void save_history(session *s) {
  HistEvent ev;
  FILE *file;
  int fd;
  if (s->history_path[0] == '\0')
    return;
  fd = open(s->history_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  file = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (file == NULL || history(s->hist, &ev, H_SAVE_FP, file) < 0) {
    fprintf(stderr, "borglua: cannot write the history %s: %s\n",
            s->history_path, strerror(errno));
    s->history_path[0] = '\0';
  }
  if (file != NULL)
    fclose(file);
  else if (fd >= 0)
    close(fd);
}


static void add_history(session *s, const char *chunk) {
  HistEvent ev;
  size_t len = strlen(chunk);
  char *entry;
  if (s->hist == NULL)
    return;
  while (len > 0 && chunk[len - 1] == '\n')
    len--;
  if (len == 0)
    return;
  entry = malloc(len + 1);
  if (entry == NULL)
    return;
  memcpy(entry, chunk, len);
  entry[len] = '\0';
  history(s->hist, &ev, H_ENTER, entry);
  free(entry);
  save_history(s);
}


/* Message handler: keeps an error object (a table) as it is, for
 * borg.repl.show_error, and adds a traceback to anything else. */
static int message_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL && lua_type(L, 1) == LUA_TTABLE)
    return 1;
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}


/* Compile the chunk on top of the stack, first with "return " in front.
 * Replaces it with the function, or with the message on a syntax error;
 * returns the status of the load. */
static int compile(lua_State *L) {
  size_t len;
  const char *code = lua_tolstring(L, -1, &len);
  const char *expr = lua_pushfstring(L, "return %s;", code);
  int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2); /* the "return" text */
    lua_remove(L, -2); /* the chunk */
    return LUA_OK;
  }
  lua_pop(L, 2);
  status = luaL_loadbuffer(L, code, len, "=stdin");
  lua_remove(L, -2);
  return status;
}


/* True when the message on top of the stack ends in "<eof>", which marks
 * a chunk that is not complete yet. */
static int incomplete(lua_State *L) {
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char mark[] = "<eof>";
  return msg != NULL && len >= sizeof mark - 1 &&
         strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}


/* The state whose chunk Ctrl-C stops. A signal handler can reach it
 * only through a variable of the file, as lua.c does. */
static lua_State *running_chunk = NULL;


/* Raise "interrupted!" in the running chunk, at its next instruction. */
static void stop_chunk(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}


/* Ctrl-C while a chunk runs Lua code: stop the chunk, not the prompt.
 * (During a borg call the core catches SIGINT itself and stops borg.) */
static void on_chunk_interrupt(int sig) {
  (void)sig;
  if (running_chunk != NULL)
    lua_sethook(running_chunk, stop_chunk,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}


/* Run the function on top of the stack and show its results or error. */
static void run(session *s) {
  lua_State *L = s->L;
  int base = lua_gettop(L), status, n;
  struct sigaction on_int, saved;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  memset(&on_int, 0, sizeof on_int);
  on_int.sa_handler = on_chunk_interrupt;
  sigemptyset(&on_int.sa_mask);
  on_int.sa_flags = SA_RESTART;
  running_chunk = L;
  sigaction(SIGINT, &on_int, &saved);
  status = lua_pcall(L, 0, LUA_MULTRET, base);
  sigaction(SIGINT, &saved, NULL);
  running_chunk = NULL;
  lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  n = lua_gettop(L) - base + 1;
  if (status != LUA_OK) {
    call_module(s, "show_error", 1, 1);
    fprintf(stderr, "%s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    fflush(stderr);
  } else if (n > 0) {
    call_module(s, "show", n, 1);
    if (lua_tostring(L, -1) != NULL)
      puts(lua_tostring(L, -1));
    fflush(stdout);
  }
  lua_settop(L, base - 1);
  call_module(s, "forget_interrupt", 0, 0);
}


/* Read one line with libedit and return it (libedit owns it). Return
 * NULL at end of input, and also when Ctrl-C stopped the read, which
 * sets *interrupted. */
static const char *edit_line(session *s, int *interrupted) {
  struct sigaction on_int, saved;
  const char *line;
  int count = 0, err;

  memset(&on_int, 0, sizeof on_int);
  on_int.sa_handler = on_prompt_interrupt;
  sigemptyset(&on_int.sa_mask);
  on_int.sa_flags = 0; /* no SA_RESTART: the read must fail with EINTR */
  sigaction(SIGINT, &on_int, &saved);
  /* libedit tracks SIGWINCH only with EL_SIGNAL, whose handlers resend
   * each signal to the whole process group; asking for the size before
   * each line follows a resize made between two lines.
   * NOTE: a resize while a line is being typed is seen at the next line. */
  el_resize(s->el);
  line = el_gets(s->el, &count);
  err = errno;
  sigaction(SIGINT, &saved, NULL);
  *interrupted = (line == NULL || count <= 0) && count == -1 && err == EINTR;
  return count > 0 ? line : NULL;
}


/* Read one line into the pending chunk: with libedit on a terminal, else
 * plainly after printing the prompt, as lua.c does for a pipe. Returns 1
 * on a line, 0 at end of input, and -1 when Ctrl-C interrupted the read. */
static int read_line(session *s) {
  const char *line;
  char *plain = NULL;
  size_t size = 0;
  int interrupted = 0;

  if (s->el != NULL) {
    line = edit_line(s, &interrupted);
  } else {
    fputs(s->prompt, stdout);
    fflush(stdout);
    line = getline(&plain, &size, stdin) > 0 ? plain : NULL;
  }
  if (line == NULL) {
    free(plain);
    return interrupted ? -1 : 0;
  }
  lua_pushvalue(s->L, s->pending);
  lua_pushstring(s->L, line);
  lua_concat(s->L, 2);
  lua_replace(s->L, s->pending);
  free(plain);
  return 1;
}


/* Open libedit on the standard streams, with history and Tab bound to
 * borg.repl's completion. Returns 0 or -1. */
static int open_editor(session *s) {
  HistEvent ev;
  s->el = el_init("borglua", stdin, stdout, stderr);
  s->hist = history_init();
  if (s->el == NULL || s->hist == NULL)
    return -1;
  history(s->hist, &ev, H_SETSIZE, HISTORY_SIZE);
  history(s->hist, &ev, H_SETUNIQUE, 1);
  el_set(s->el, EL_CLIENTDATA, (void *)s);
  el_set(s->el, EL_EDITOR, "emacs");
  el_set(s->el, EL_PROMPT, prompt_text);
  el_set(s->el, EL_HIST, history, s->hist);
  el_set(s->el, EL_ADDFN, "borglua-complete", "complete a Lua name",
         complete);
  el_set(s->el, EL_BIND, "^I", "borglua-complete", (const char *)NULL);
  el_source(s->el, NULL); /* the person's ~/.editrc, if any */
  if (find_history(s) == 0) {
    if (make_parents(s->history_path) != 0) {
      fprintf(stderr, "borglua: cannot keep a history in %s: %s\n",
              s->history_path, strerror(errno));
      s->history_path[0] = '\0';
    } else {
      history(s->hist, &ev, H_LOAD, s->history_path);
    }
  } else {
    s->history_path[0] = '\0';
  }
  return 0;
}


static void close_editor(session *s) {
  if (s->el != NULL)
    el_end(s->el);
  if (s->hist != NULL)
    history_end(s->hist);
}


/* Open borg.repl at the top of the stack; returns 0 or -1 (printed). */
static int open_module(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "borg.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "borglua: cannot load borg.repl: %s\n",
            lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}


int borglua__repl(lua_State *L) {
  session s;
  int top = lua_gettop(L), got;

  memset(&s, 0, sizeof s);
  s.L = L;
  if (open_module(L) != 0)
    return 2;
  s.module = lua_gettop(L);
  lua_pushliteral(L, "");
  s.pending = lua_gettop(L);
  s.prompt = PROMPT;
  if (isatty(STDIN_FILENO) && open_editor(&s) != 0) {
    fprintf(stderr, "borglua: cannot start the line editor\n");
    close_editor(&s);
    lua_settop(L, top);
    return 2;
  }

  if (s.el != NULL) {
    printf("borglua %s (%s): Tab completes names, Ctrl-D ends the session\n",
           borglua_version(), LUA_VERSION);
    fflush(stdout);
  }
  while ((got = read_line(&s)) != 0) {
    if (got < 0) {
      fputc('\n', stdout);
      lua_pushliteral(L, "");
      lua_replace(L, s.pending);
      s.prompt = PROMPT;
      continue;
    }
    lua_pushvalue(L, s.pending);
    if (compile(L) != LUA_OK && incomplete(L)) {
      lua_pop(L, 1);
      s.prompt = PROMPT_MORE;
      continue;
    }
    /* stack: module, pending, function or message */
    add_history(&s, lua_tostring(L, s.pending));
    lua_pushliteral(L, "");
    lua_replace(L, s.pending);
    s.prompt = PROMPT;
    if (lua_isfunction(L, -1)) {
      run(&s);
    } else {
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  fputc('\n', stdout);
  close_editor(&s);
  lua_settop(L, top);
  return 0;
}
