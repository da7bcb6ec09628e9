/* core.h: internal entry points shared by the files of src/. Not part of
 * the public API (see borglua.h); the shared library hides them. */
#ifndef BORGLUA_CORE_H
#define BORGLUA_CORE_H

#include "lua.h"

/* Push the borg.core module table (opens the event loop once per state). */
int borglua__open_core(lua_State *L);

/* Push the borg.sys module table: lock files, atomic writes, SHA-256. */
int borglua__open_sys(lua_State *L);

/* Call the function below nargs arguments on the stack, like lua_pcall,
 * with a message handler that adds a traceback to plain errors. */
int borglua__pcall(lua_State *L, int nargs, int nresults);

#endif
