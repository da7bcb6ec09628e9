/* embedded.h: the Lua modules compiled into borglua (generated into
 * build/embedded.c by scripts/embed.lua). Internal, not public API. */
#ifndef BORGLUA_EMBEDDED_H
#define BORGLUA_EMBEDDED_H

#include <stddef.h>

typedef struct borglua__module {
  const char *name;      /* module name for require, such as "borg.argv" */
  const char *chunkname; /* "@lua/borg/argv.lua" */
  const char *source;
  size_t size;
} borglua__module;

/* Terminated by an entry whose name is NULL. */
extern const borglua__module borglua__modules[];

#endif
