/*
 * borglua.h: the public C API of borglua, a Lua 5.4 host for borgbackup.
 *
 * A program that embeds borglua creates a state with borglua_newstate(),
 * runs policy code with borglua_dostring() or borglua_dofile(), reads
 * results with the ordinary Lua C API, and closes the state with
 * borglua_close(). A program that makes its own state calls
 * borglua_openlibs() on it instead. scripts/embed-example.c is a whole
 * example. Link libborglua.so with `pkg-config --cflags --libs borglua`;
 * to link libborglua.a instead, give its path followed by `pkg-config
 * --libs lua5.4 libuv` and -lm. Every other symbol of the library is
 * internal.
 *
 * The borg calls of one state run on that state's own event loop; use a
 * state from one thread at a time, as with any lua_State.
 */
#ifndef BORGLUA_H
#define BORGLUA_H

#include "lua.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BORGLUA_VERSION "0.1.0"

#if defined(__GNUC__)
#define BORGLUA_API __attribute__((visibility("default")))
#else
#define BORGLUA_API
#endif

/* Return the version of the library, such as "0.1.0". */
BORGLUA_API const char *borglua_version(void);

/* Create a Lua state with the standard libraries, lua-cjson (as "cjson"
 * and "cjson.safe") and borg loaded. The global `borg` is the borg
 * table. Returns NULL when memory runs out. */
BORGLUA_API lua_State *borglua_newstate(void);

/* Make cjson and borg loadable with require in an existing state L (for
 * a host that creates its own state); it sets no global. To also have the
 * global `borg`, call luaL_requiref(L, "borg", luaopen_borg, 1) and pop
 * the table it leaves. Does not raise. */
BORGLUA_API void borglua_openlibs(lua_State *L);

/* The Lua C module entry: pushes the borg table. Stock Lua finds it in
 * borg.so; it raises a Lua error when cjson cannot be loaded. */
BORGLUA_API int luaopen_borg(lua_State *L);

/* Load and run the file at path (NULL reads standard input) with a
 * traceback handler. Returns LUA_OK, or an error code with the message
 * (a string) pushed on the stack. */
BORGLUA_API int borglua_dofile(lua_State *L, const char *path);

/* Load and run chunk, named chunkname in messages, like borglua_dofile. */
BORGLUA_API int borglua_dostring(lua_State *L, const char *chunk,
                                 const char *chunkname);

/* Close L: children still running are terminated and reaped first. */
BORGLUA_API void borglua_close(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
