/*
 * embed_signal.c: a C host that embeds borglua, for the specs.
 *
 *   embed_signal FAKE_BORG
 *
 * Installs its own SIGINT handler, runs one borg call through borglua
 * (with the stand-in borg given), then raises SIGINT. borglua catches
 * SIGINT only while borg runs, so the host's handler must run; exits 0
 * when it did, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "borglua.h"

static volatile sig_atomic_t caught;


static void on_sigint(int sig) {
  (void)sig;
  caught = 1;
}


int main(int argc, char **argv) {
  struct sigaction sa;
  lua_State *L;
  if (argc != 2) {
    fprintf(stderr, "usage: embed_signal FAKE_BORG\n");
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);

  L = borglua_newstate();
  if (L == NULL)
    return 2;
  lua_pushstring(L, argv[1]);
  lua_setglobal(L, "fake_borg");
  if (borglua_dostring(L, "borg.new{ borg = fake_borg }.check{ '/r' }",
                       "=embed_signal") != LUA_OK) {
    fprintf(stderr, "embed_signal: %s\n", lua_tostring(L, -1));
    borglua_close(L);
    return 1;
  }
  raise(SIGINT);
  borglua_close(L);
  if (!caught) {
    fprintf(stderr, "embed_signal: the host's SIGINT handler did not run\n");
    return 1;
  }
  puts("embed_signal: the host's SIGINT handler ran");
  return 0;
}
