/*
 * embed-example.c: a C program that embeds borglua.
 *
 *   embed-example DIR
 *
 * Backs up DIR/src into a new unencrypted repository DIR/repo with the
 * real borg, through a policy written in Lua, then reads the number of
 * files of the new archive back from the Lua result in C and prints
 *
 *   archive NAME: N files
 *
 * Build it against an installed borglua:
 *
 *   cc embed-example.c $(pkg-config --cflags --libs borglua) -o embed-example
 *
 * Exit status: 0 ok, 1 wrong usage, 2 the policy failed.
 */
#include <stdio.h>

#include <borglua.h>

/* The policy. The host sets the global `dir` before it runs; the global
 * `result` carries the decoded `borg create --json` document back. */
static const char policy[] =
    "local repo = dir .. '/repo'\n"
    "borg.init{ repo, encryption = 'none' }\n"
    "result = borg.create{ repo .. '::example-{now}', dir .. '/src',\n"
    "                      json = true }\n";

int main(int argc, char **argv) {
  lua_State *L;
  long long nfiles;
  const char *name;

  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR (backs up DIR/src into DIR/repo)\n",
            argv[0]);
    return 1;
  }
  L = borglua_newstate();
  if (L == NULL) {
    fprintf(stderr, "embed-example: cannot create the Lua state\n");
    return 2;
  }

  lua_pushstring(L, argv[1]);
  lua_setglobal(L, "dir");
  if (borglua_dostring(L, policy, "=policy") != LUA_OK) {
    fprintf(stderr, "embed-example: %s\n", lua_tostring(L, -1));
    borglua_close(L);
    return 2;
  }

  /* Read result.archive.name and result.archive.stats.nfiles, checking
   * each type: lua_getfield on a value that is not a table would raise
   * outside any protected call and abort the program. */
  if (lua_getglobal(L, "result") != LUA_TTABLE ||
      lua_getfield(L, -1, "archive") != LUA_TTABLE ||
      lua_getfield(L, -1, "name") != LUA_TSTRING ||
      lua_getfield(L, -2, "stats") != LUA_TTABLE ||
      lua_getfield(L, -1, "nfiles") != LUA_TNUMBER) {
    fprintf(stderr, "embed-example: the result has no archive.name and"
                    " archive.stats.nfiles\n");
    borglua_close(L);
    return 2;
  }
  /* stack: result, archive, name, stats, nfiles */
  name = lua_tostring(L, -3);
  nfiles = (long long)lua_tointeger(L, -1);
  printf("archive %s: %lld files\n", name, nfiles);
  lua_pop(L, 5);

  borglua_close(L);
  return 0;
}
