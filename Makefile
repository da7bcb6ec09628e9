# borglua: build, test and demo.
#
#   make         check the Debian packages, then build everything in build/
#   make test    run the specs against the real borg
#   make demo    run scripts/nightly.lua twice on real files
#   make catalogue  regenerate lua/borg/catalogue.lua from the installed borg

CC ?= cc
LUA ?= lua5.4
# borg's own interpreter: the first line of the borg program.
BORG_PYTHON ?= $(shell sed -n '1s/^\#! *//p' /usr/bin/borg 2>/dev/null || echo /usr/bin/python3)

# Debian packages the build, the tests and the demo need.
PACKAGES = gcc make pkg-config lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev \
           libuv1-dev lua-busted borgbackup borgbackup2 fuse python3-llfuse \
           libedit-dev tmux python3-dotenv

BUILD = build
LUA_SOURCES = $(sort $(wildcard lua/borg/*.lua))
LIB_OBJECTS = $(BUILD)/core.o $(BUILD)/borglua.o $(BUILD)/embedded.o
MODULE_OBJECTS = $(BUILD)/core.o $(BUILD)/borglua-module.o $(BUILD)/embedded.o
# The compiler finds the archive in its multiarch directory; the libdir
# of Debian's lua5.4-cjson.pc says /usr/lib, where it is not.
CJSON_ARCHIVE = $(shell $(CC) -print-file-name=liblua5.4-cjson.a)

WARNINGS = -Wall -Wextra -Werror
BASE_CFLAGS = -std=c11 -O2 -g -fPIC -fvisibility=hidden $(WARNINGS) \
              -Isrc -I$(BUILD)
PKG_CFLAGS = $(shell pkg-config --cflags lua5.4 libuv 2>/dev/null)
ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
LIBS = $(shell pkg-config --libs lua5.4 libuv 2>/dev/null)
UV_LIBS = $(shell pkg-config --libs libuv 2>/dev/null)
EDIT_LIBS = $(shell pkg-config --libs libedit 2>/dev/null)

.PHONY: all deps test demo catalogue clean check-catalogue

all: deps
	@$(MAKE) --no-print-directory binaries

binaries: $(BUILD)/borglua $(BUILD)/libborglua.a $(BUILD)/libborglua.so \
          $(BUILD)/libborglua.so.0 $(BUILD)/borg.so

deps:
	@sh scripts/check-deps.sh $(PACKAGES)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/embedded.c: scripts/embed.lua $(LUA_SOURCES) | $(BUILD)
	$(LUA) scripts/embed.lua $@ $(LUA_SOURCES)

$(BUILD)/embedded.o: $(BUILD)/embedded.c src/embedded.h
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/core.o: src/core.c src/core.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/borglua.o: src/borglua.c src/borglua.h src/core.h src/embedded.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -DBORGLUA_WITH_CJSON -c $< -o $@

# The module for stock lua5.4 uses the system's cjson module instead.
$(BUILD)/borglua-module.o: src/borglua.c src/borglua.h src/core.h src/embedded.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/main.o: src/main.c src/borglua.h src/core.h src/repl.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/repl.o: src/repl.c src/repl.h src/core.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# lua-cjson comes from Debian's static archive, so the program and the
# library need no cjson module at run time.
$(BUILD)/cjson.stamp: | $(BUILD)
	mkdir -p $(BUILD)/cjson
	cd $(BUILD)/cjson && ar x $(CJSON_ARCHIVE)
	touch $@

$(BUILD)/borglua: $(BUILD)/main.o $(BUILD)/repl.o $(LIB_OBJECTS) $(BUILD)/cjson.stamp
	$(CC) -o $@ $(BUILD)/main.o $(BUILD)/repl.o $(LIB_OBJECTS) $(BUILD)/cjson/*.o \
	  $(LIBS) $(EDIT_LIBS) -lm $(LDFLAGS)

$(BUILD)/libborglua.a: $(LIB_OBJECTS) $(BUILD)/cjson.stamp
	rm -f $@
	ar rcs $@ $(LIB_OBJECTS) $(BUILD)/cjson/*.o

# Debian's static cjson is not position-independent, so the shared
# library links its shared twin (a C library, not a Lua module lookup).
$(BUILD)/libborglua.so: $(LIB_OBJECTS) src/libborglua.map
	$(CC) -shared -o $@ -Wl,-soname,libborglua.so.0 \
	  -Wl,--version-script=src/libborglua.map \
	  $(LIB_OBJECTS) -llua5.4-cjson $(LIBS) -lm $(LDFLAGS)

# The name that programs linked with -lborglua look for at run time.
$(BUILD)/libborglua.so.0: $(BUILD)/libborglua.so
	ln -sf libborglua.so $@

$(BUILD)/borg.so: $(MODULE_OBJECTS) src/borg-module.map
	$(CC) -shared -o $@ -Wl,--version-script=src/borg-module.map \
	  $(MODULE_OBJECTS) $(UV_LIBS) $(LDFLAGS)

# The specs run inside borglua itself. SPECS=tests/core_spec.lua runs one
# file.
# A C host that embeds the library, run by tests/program_spec.lua.
$(BUILD)/embed_signal: tests/embed_signal.c $(BUILD)/libborglua.a
	$(CC) $(ALL_CFLAGS) -o $@ tests/embed_signal.c $(BUILD)/libborglua.a \
	  $(LIBS) -lm $(LDFLAGS)

test: all
	@$(MAKE) --no-print-directory $(BUILD)/embed_signal
	BORGLUA=$(CURDIR)/$(BUILD)/borglua BORGLUA_TOP=$(CURDIR) \
	  BORG_PYTHON=$(BORG_PYTHON) $(BUILD)/borglua tests/busted.lua $(SPECS)

demo: all
	sh scripts/demo.sh

catalogue:
	$(BORG_PYTHON) scripts/gen-catalogue.py > lua/borg/catalogue.lua

clean:
	rm -rf $(BUILD)
