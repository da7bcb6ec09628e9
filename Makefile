# borglua: build, test and demo.
#
#   make         check the Debian packages, then build everything in build/
#   make test    run the specs against the real borg
#   make demo    run scripts/nightly.lua twice on real files
#   make bench   measure borglua against bare borg and plain Lua (minutes;
#                sizes in tests/bench/rows/*.lua, BENCH_SMOKE=1 for tiny ones)
#   make catalogue  regenerate lua/borg/catalogue.lua from the installed borg
#   make catalogue2 regenerate lua/borg/catalogue2.lua from the installed borg2
#   make install PREFIX=/usr/local DESTDIR=   install; make uninstall removes it

CC ?= cc
LUA ?= lua5.4
# borg's own interpreter: the first line of the borg program.
BORG_PYTHON ?= $(shell sed -n '1s/^\#! *//p' /usr/bin/borg 2>/dev/null || echo /usr/bin/python3)
# borg2's interpreter, and the directory its program adds to sys.path.
BORG2_PYTHON ?= $(shell sed -n '1s/^\#! *//p' /usr/bin/borg2 2>/dev/null || echo /usr/bin/python3)
BORG2_PATH ?= $(shell sed -n 's/^sys\.path\.insert(0, "\(.*\)")$$/\1/p' /usr/bin/borg2 2>/dev/null)

# Debian packages the build, the tests and the demo need (man-db renders
# the man page in the install spec).
PACKAGES = gcc make pkg-config lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev \
           libuv1-dev lua-busted borgbackup borgbackup2 fuse python3-llfuse \
           libedit-dev tmux python3-dotenv man-db

BUILD = build
LUA_SOURCES = $(sort $(wildcard lua/borg/*.lua))
WARM_OBJECTS = $(BUILD)/warm.o $(BUILD)/warm_source.o
SHIM_OBJECTS = $(BUILD)/shim.o $(BUILD)/shim-image.o
# Internal C modules, linked into the program, the libraries and borg.so.
CORE_OBJECTS = $(BUILD)/core.o $(BUILD)/sys.o $(WARM_OBJECTS) $(SHIM_OBJECTS)
LIB_OBJECTS = $(CORE_OBJECTS) $(BUILD)/borglua.o $(BUILD)/embedded.o
MODULE_OBJECTS = $(CORE_OBJECTS) $(BUILD)/borglua-module.o $(BUILD)/embedded.o
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

.PHONY: all deps test demo bench catalogue catalogue2 clean check-catalogue install \
        uninstall

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

$(BUILD)/core.o: src/core.c src/core.h src/warm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The warm server (src/warm.py) is compiled in, so an installed borglua
# needs no Python file on disk.
$(BUILD)/warm_source.c: scripts/embed.lua src/warm.py | $(BUILD)
	$(LUA) scripts/embed.lua --text borglua__warm_source $@ src/warm.py

$(BUILD)/warm_source.o: $(BUILD)/warm_source.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/warm.o: src/warm.c src/warm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/sys.o: src/sys.c src/core.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# borglua-exec, the parent-death shim, travels inside the library as bytes
# (src/shim.c), so no installed helper program is needed.
$(BUILD)/borglua-exec: src/exec-shim.c | $(BUILD)
	$(CC) -std=c11 -Os -s $(WARNINGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

$(BUILD)/shim-image.c: scripts/embed-binary.lua $(BUILD)/borglua-exec
	$(LUA) scripts/embed-binary.lua $@ borglua__shim $(BUILD)/borglua-exec

$(BUILD)/shim-image.o: $(BUILD)/shim-image.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/shim.o: src/shim.c src/core.h | $(BUILD)
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

# The archive holds one object in which only the API of borglua.h is
# global: the core's and cjson's functions become local, so they cannot
# clash with a program's own symbols (or its own lua-cjson).
$(BUILD)/libborglua.a: $(LIB_OBJECTS) $(BUILD)/cjson.stamp
	rm -f $@ $(BUILD)/libborglua-all.o
	$(LD) -r -o $(BUILD)/libborglua-all.o $(LIB_OBJECTS) $(BUILD)/cjson/*.o
	objcopy --wildcard --keep-global-symbol='borglua_[!_]*' \
	  --keep-global-symbol=luaopen_borg $(BUILD)/libborglua-all.o
	ar rcs $@ $(BUILD)/libborglua-all.o

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

# The embedding example of scripts/, run by tests/embed_spec.lua.
$(BUILD)/embed-example: scripts/embed-example.c src/borglua.h $(BUILD)/libborglua.a
	$(CC) $(ALL_CFLAGS) -o $@ scripts/embed-example.c $(BUILD)/libborglua.a \
	  $(LIBS) -lm $(LDFLAGS)

# The suite runs once per mode: borg started by warm servers (the
# default), and borg started with exec (BORGLUA_WARM=0). Both must pass
# alike; MODES=warm or MODES=cold runs one while iterating.
MODES ?= warm cold
test: all
	@$(MAKE) --no-print-directory $(BUILD)/embed_signal $(BUILD)/embed-example
	@for mode in $(MODES); do \
	  echo "specs with $$mode borg:"; \
	  if [ $$mode = cold ]; then warm=0; else warm=1; fi; \
	  BORGLUA_WARM=$$warm BORGLUA=$(CURDIR)/$(BUILD)/borglua \
	    BORGLUA_TOP=$(CURDIR) BORG_PYTHON=$(BORG_PYTHON) \
	    BORG2_PYTHON=$(BORG2_PYTHON) BORG2_PATH=$(BORG2_PATH) \
	    $(BUILD)/borglua tests/busted.lua $(SPECS) || exit 1; \
	done

demo: all
	sh scripts/demo.sh

# Not part of `make test`, which runs a smoke version with tiny sizes
# (tests/bench_spec.lua).
bench: all
	BORGLUA=$(CURDIR)/$(BUILD)/borglua BORGLUA_TOP=$(CURDIR) \
	  BORG_PYTHON=$(BORG_PYTHON) $(BUILD)/borglua tests/bench/run.lua $(ROWS)

catalogue:
	$(BORG_PYTHON) scripts/gen-catalogue.py > lua/borg/catalogue.lua

catalogue2:
	$(BORG2_PYTHON) scripts/gen-catalogue.py --path $(BORG2_PATH) \
	  --target catalogue2 > lua/borg/catalogue2.lua

clean:
	rm -rf $(BUILD)

# ---- install ---------------------------------------------------------------

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/borglua
# Where stock lua5.4 finds C modules: Debian's lua5.4 searches
# /usr/local/lib/lua/5.4 first, and its pkg-config file names the
# directory of the system's own modules, which suits PREFIX=/usr.
LUA_CMODDIR ?= $(if $(filter /usr,$(PREFIX)),$(shell pkg-config \
  --variable=INSTALL_CMOD lua5.4),$(PREFIX)/lib/lua/5.4)
VERSION = $(shell sed -n 's/^\#define BORGLUA_VERSION "\(.*\)"/\1/p' src/borglua.h)

# Every path that install writes, in the order uninstall removes them.
INSTALLED = $(BINDIR)/borglua $(LIBDIR)/libborglua.a \
  $(LIBDIR)/libborglua.so $(LIBDIR)/libborglua.so.0 \
  $(LIBDIR)/libborglua.so.$(VERSION) $(INCLUDEDIR)/borglua.h \
  $(LIBDIR)/pkgconfig/borglua.pc $(MANDIR)/man1/borglua.1 \
  $(LUA_CMODDIR)/borg.so $(DATADIR)/nightly.lua \
  $(DATADIR)/borglua-nightly.service $(DATADIR)/borglua-nightly.timer

# The pkg-config file for the PREFIX of this run; rewritten every time,
# since PREFIX may differ between runs. Its own paths are relative to
# ${prefix}, so `pkg-config --define-variable=prefix=DIR` finds a copy
# installed with DESTDIR. Lua's flags are written out rather than named
# in Requires, because that override would move lua5.4's paths too.
$(BUILD)/borglua.pc: FORCE | $(BUILD)
	printf '%s\n' 'prefix=$(PREFIX)' \
	  'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' \
	  'Name: borglua' \
	  'Description: Lua 5.4 host that runs borgbackup' \
	  'Version: $(VERSION)' \
	  'Libs: -L$${libdir} -lborglua $(shell pkg-config --libs lua5.4)' \
	  'Libs.private: $(UV_LIBS) -lm' \
	  'Cflags: -I$${includedir} $(shell pkg-config --cflags lua5.4)' > $@

FORCE:

install: all $(BUILD)/borglua.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(LUA_CMODDIR) $(DESTDIR)$(DATADIR)
	install -m 755 $(BUILD)/borglua $(DESTDIR)$(BINDIR)/borglua
	install -m 644 $(BUILD)/libborglua.a $(DESTDIR)$(LIBDIR)/libborglua.a
	install -m 755 $(BUILD)/libborglua.so \
	  $(DESTDIR)$(LIBDIR)/libborglua.so.$(VERSION)
	ln -sf libborglua.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libborglua.so.0
	ln -sf libborglua.so.0 $(DESTDIR)$(LIBDIR)/libborglua.so
	install -m 644 src/borglua.h $(DESTDIR)$(INCLUDEDIR)/borglua.h
	install -m 644 $(BUILD)/borglua.pc $(DESTDIR)$(LIBDIR)/pkgconfig/borglua.pc
	install -m 644 src/borglua.1 $(DESTDIR)$(MANDIR)/man1/borglua.1
	install -m 755 $(BUILD)/borg.so $(DESTDIR)$(LUA_CMODDIR)/borg.so
	install -m 644 scripts/nightly.lua $(DESTDIR)$(DATADIR)/nightly.lua
	for unit in borglua-nightly.service borglua-nightly.timer; do \
	  sed 's|/usr/local/bin/|$(BINDIR)/|g; s|/usr/local/share/borglua/|$(DATADIR)/|g' \
	    scripts/$$unit > $(DESTDIR)$(DATADIR)/$$unit && \
	  chmod 644 $(DESTDIR)$(DATADIR)/$$unit || exit 1; \
	done
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true
