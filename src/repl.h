/*
 * repl.h: the interactive prompt of the borglua program (not part of the
 * library).
 */
#ifndef BORGLUA_REPL_H
#define BORGLUA_REPL_H

#include "lua.h"

/* Read, run and show chunks from standard input until end of file, with
 * line editing and persistent history when standard input is a terminal.
 * Returns 0, or 2 when the prompt cannot start (a message is printed). */
int borglua__repl(lua_State *L);

#endif
