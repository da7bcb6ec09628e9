/* core.h: internal entry points shared by the files of src/. Not part of
 * the public API (see borglua.h); the shared library hides them. */
#ifndef BORGLUA_CORE_H
#define BORGLUA_CORE_H

#include <stddef.h>

#include "lua.h"

/* Push the borg.core module table (opens the event loop once per state). */
int borglua__open_core(lua_State *L);

/* Push the borg.sys module table: lock files, atomic writes, SHA-256. */
int borglua__open_sys(lua_State *L);

/* Call the function below nargs arguments on the stack, like lua_pcall,
 * with a message handler that adds a traceback to plain errors. */
int borglua__pcall(lua_State *L, int nargs, int nresults);

/* Write borglua-exec into an executable in-memory file whose descriptor
 * is at least min, store its path (/proc/self/fd/N) in path, and return
 * the descriptor; return -1 when the system cannot run it (shim.c). */
int borglua__shim_open(int min, char *path, size_t size);

/* Read borglua-exec's report on the pipe fd: 0 when the program was
 * started, else the errno that execvp failed with (shim.c). */
int borglua__shim_result(int fd);

#endif
