/*
 * borglua.c: the Lua state host. Registers the embedded Lua modules and
 * borg.core, opens the libraries, and runs chunks with a traceback.
 */
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "borglua.h"
#include "core.h"
#include "embedded.h"

#ifdef BORGLUA_WITH_CJSON
#include "lua-cjson.h"
extern int luaopen_cjson_safe(lua_State *L);
#endif


const char *borglua_version(void) {
  return BORGLUA_VERSION;
}


/* Loader for an embedded module; upvalue 1 is its index in the table of
 * embedded modules. Raises on a syntax error. */
static int load_embedded(lua_State *L) {
  const borglua__module *m =
      &borglua__modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}


/* Put the embedded modules, borg.core and borg.sys into package.preload,
 * so that require finds them before it looks at the disk. */
static void preload_modules(lua_State *L) {
  int i;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  /* stack: preload */
  for (i = 0; borglua__modules[i].name != NULL; i++) {
    if (strcmp(borglua__modules[i].name, "borg") == 0)
      continue;
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, borglua__modules[i].name);
  }
  lua_pushcfunction(L, borglua__open_core);
  lua_setfield(L, -2, "borg.core");
  lua_pushcfunction(L, borglua__open_sys);
  lua_setfield(L, -2, "borg.sys");
  lua_pop(L, 1);
}


int luaopen_borg(lua_State *L) {
  int i;
  preload_modules(L);
  for (i = 0; borglua__modules[i].name != NULL; i++) {
    if (strcmp(borglua__modules[i].name, "borg") == 0) {
      lua_pushinteger(L, i);
      lua_pushcclosure(L, load_embedded, 1);
      lua_call(L, 0, 1);
      return 1;
    }
  }
  return luaL_error(L, "borglua: the borg module is not embedded");
}


void borglua_openlibs(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  /* stack: preload */
#ifdef BORGLUA_WITH_CJSON
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_cjson_safe);
  lua_setfield(L, -2, "cjson.safe");
#endif
  lua_pushcfunction(L, luaopen_borg);
  lua_setfield(L, -2, "borg");
  lua_pop(L, 1);
}


/* Open the libraries in protected mode; upvalue-free. */
static int open_all(lua_State *L) {
  luaL_openlibs(L);
  borglua_openlibs(L);
  luaL_requiref(L, "borg", luaopen_borg, 1);
  lua_pop(L, 1);
  return 0;
}


lua_State *borglua_newstate(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL)
    return NULL;
  lua_pushcfunction(L, open_all);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}


/* Message handler: an error object of the borg library (a table with
 * __tostring) becomes its text, which already names the place and the
 * failure. Any other error gets a traceback. */
static int message_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}


int borglua__pcall(lua_State *L, int nargs, int nresults) {
  int status;
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}


int borglua_dofile(lua_State *L, const char *path) {
  int status = luaL_loadfile(L, path);
  return status == LUA_OK ? borglua__pcall(L, 0, 0) : status;
}


int borglua_dostring(lua_State *L, const char *chunk, const char *chunkname) {
  int status = luaL_loadbuffer(L, chunk, strlen(chunk), chunkname);
  return status == LUA_OK ? borglua__pcall(L, 0, 0) : status;
}


void borglua_close(lua_State *L) {
  if (L != NULL)
    lua_close(L);
}
