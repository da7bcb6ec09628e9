/*
 * main.c: the borglua program.
 *
 *   borglua [options] [script [args]]
 *
 * Runs a backup policy script with `arg` set as lua(1) does, a chunk
 * given with -e, or the script on standard input. Exit status: 0 ok, 1 if
 * a borg call ended with warnings, 2 on an uncaught error, 128+N when a
 * signal N interrupted a borg call.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "borglua.h"
#include "core.h"
#include "repl.h"

#define PROGRAM "borglua"

static const char usage_text[] =
    "usage: " PROGRAM " [options] [script [args]]\n"
    "Run a borgbackup policy written in Lua.\n"
    "\n"
    "  -e CHUNK     run the Lua chunk CHUNK\n"
    "  -i           enter the interactive prompt after the script\n"
    "  --plan       print each borg command instead of running it\n"
    "  -v, --version  print the versions of borglua, Lua and borg\n"
    "  -h, --help   print this help\n"
    "  --           stop handling options\n"
    "  -            run the script read from standard input\n"
    "\n"
    "Exit status: 0 ok, 1 a borg call ended with warnings, 2 an error,\n"
    "128+N interrupted by signal N.\n";


static void print_error(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "%s: %s\n", PROGRAM, msg ? msg : "(error without message)");
  fflush(stderr);
  lua_pop(L, 1);
}


/* Set the global `arg`: arg[0] is the script, arg[1..] its arguments,
 * negative indexes the program and options before it, as lua(1) does. */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
  int i;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}


/* Run the script argv[script] (or stdin for "-") with its arguments as
 * the chunk's varargs. */
static int run_script(lua_State *L, char **argv, int argc, int script) {
  const char *path = argv[script];
  int status, i;
  if (strcmp(path, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
    path = NULL;
  status = luaL_loadfile(L, path);
  if (status != LUA_OK)
    return status;
  for (i = script + 1; i < argc; i++)
    lua_pushstring(L, argv[i]);
  return borglua__pcall(L, argc - script - 1, 0);
}


/* Print the versions of borglua, Lua and the borg program. */
static int print_versions(lua_State *L) {
  static const char chunk[] =
      "local ok, v = pcall(require('borg').version)\n"
      "print(('borglua %s (%s)'):format(..., _VERSION))\n"
      "print(ok and ('borg ' .. v.string) or ('borg: unavailable: '\n"
      "  .. (type(v) == 'table' and v.message or tostring(v))))\n"
      "return ok\n";
  int ok;
  if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=version") != LUA_OK)
    return 2;
  lua_pushstring(L, borglua_version());
  if (borglua__pcall(L, 1, 1) != LUA_OK) {
    print_error(L);
    return 2;
  }
  ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return ok ? 0 : 2;
}


/* Return the exit status for the end of the run: 128+N after a signal,
 * else 1 when a borg call warned, else 0. */
static int final_status(lua_State *L, int status) {
  static const char chunk[] =
      "local sig = require('borg.core').interrupted()\n"
      "if sig then return 128 + sig end\n"
      "return require('borg').warned() and 1 or 0\n";
  int code = 0;
  if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=status") == LUA_OK &&
      lua_pcall(L, 0, 1, 0) == LUA_OK)
    code = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (code >= 128)
    return code;
  return status != 0 ? status : code;
}


/* Turn on plan mode: borg calls print what they would run. */
static int start_planning(lua_State *L) {
  if (borglua_dostring(L, "require('borg').planning = true", "=plan") !=
      LUA_OK) {
    print_error(L);
    return 2;
  }
  return 0;
}


/* Make os.exit close the state unless the script passes close = false.
 * Closing terminates and reaps borg children still running, so they
 * release their repository locks instead of being left behind. */
static void close_on_exit(lua_State *L) {
  static const char chunk[] =
      "local exit = os.exit\n"
      "os.exit = function(code, close)\n"
      "  if close == nil then close = true end\n"
      "  return exit(code, close)\n"
      "end\n";
  if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=exit") == LUA_OK)
    lua_pcall(L, 0, 0, 0);
  lua_settop(L, 0);
}


int main(int argc, char **argv) {
  lua_State *L = borglua_newstate();
  int i, script = 0, interactive = 0, ran = 0, status = 0;
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state\n", PROGRAM);
    return 2;
  }
  close_on_exit(L);
  for (i = 1; i < argc && script == 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-e") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: option '-e' needs a chunk\n%s", PROGRAM,
                usage_text);
        return 2;
      }
      if (!ran)
        set_arg(L, argv, argc, 0);
      ran = 1;
      if (borglua_dostring(L, argv[++i], "=(command line)") != LUA_OK) {
        print_error(L);
        status = 2;
        break;
      }
    } else if (strcmp(a, "-i") == 0) {
      interactive = 1;
    } else if (strcmp(a, "--plan") == 0) {
      if (start_planning(L) != 0) {
        borglua_close(L);
        return 2;
      }
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      status = print_versions(L);
      borglua_close(L);
      return status;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      borglua_close(L);
      return 0;
    } else if (strcmp(a, "--") == 0) {
      if (i + 1 < argc)
        script = i + 1;
      break;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "%s: unknown option '%s'\n%s", PROGRAM, a, usage_text);
      borglua_close(L);
      return 2;
    } else {
      script = i;
    }
  }
  if (status == 0 && script > 0) {
    set_arg(L, argv, argc, script);
    ran = 1;
    if (run_script(L, argv, argc, script) != LUA_OK) {
      print_error(L);
      status = 2;
    }
  }
  if (status == 0 && (interactive || !ran)) {
    if (interactive || isatty(STDIN_FILENO)) {
      status = borglua__repl(L);
    } else {
      set_arg(L, argv, argc, 0);
      if (borglua_dofile(L, NULL) != LUA_OK) {
        print_error(L);
        status = 2;
      }
    }
  }
  status = final_status(L, status);
  borglua_close(L);
  return status;
}
