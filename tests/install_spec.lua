-- make install and make uninstall into a temporary DESTDIR, and the
-- installed copy in use: the man page, pkg-config, the embedding
-- example, the module in stock Lua and the systemd units.

local helpers = require "helpers"

local q = helpers.quote

-- The paths that `make install PREFIX=/usr/local` writes, below DESTDIR.
local INSTALLED = {
  "/usr/local/bin/borglua",
  "/usr/local/lib/libborglua.a",
  "/usr/local/lib/libborglua.so",
  "/usr/local/lib/libborglua.so.0",
  "/usr/local/lib/libborglua.so.0.1.0",
  "/usr/local/include/borglua.h",
  "/usr/local/lib/pkgconfig/borglua.pc",
  "/usr/local/share/man/man1/borglua.1",
  "/usr/local/lib/lua/5.4/borg.so",
  "/usr/local/share/borglua/nightly.lua",
  "/usr/local/share/borglua/borglua-nightly.service",
  "/usr/local/share/borglua/borglua-nightly.timer",
}

-- Run make in the source tree with the given arguments; return its
-- output and exit status. The variables of the make that runs the specs
-- are removed, so that they do not leak into this one.
local function make(args)
  return helpers.shell("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "
    .. q(helpers.top) .. " " .. args .. " 2>&1")
end

-- Return the files and links below dir, sorted, as paths relative to it.
local function tree(dir)
  local output = helpers.shell("cd " .. q(dir) .. " && find . ! -type d | sort")
  local list = {}
  for path in output:gmatch("%./([^\n]+)") do
    list[#list + 1] = "/" .. path
  end
  return list
end

describe("make install", function()
  local dir, stage, prefix

  setup(function()
    dir = helpers.tmpdir()
    stage = dir .. "/stage"
    prefix = stage .. "/usr/local"
    -- A file of someone else's that uninstall must leave alone.
    os.execute("mkdir -p " .. q(prefix .. "/lib"))
    helpers.write(prefix .. "/lib/other.so", "not ours")
    local output, status = make("install PREFIX=/usr/local DESTDIR=" .. q(stage))
    assert.are.equal(0, status, output)
  end)

  teardown(function()
    helpers.rmdir(dir)
  end)

  it("writes each file where it belongs", function()
    local expected = { "/usr/local/lib/other.so" }
    for _, path in ipairs(INSTALLED) do
      expected[#expected + 1] = path
    end
    table.sort(expected)
    assert.are.same(expected, tree(stage))
  end)

  it("links the library names to the versioned file", function()
    local lib = prefix .. "/lib/"
    assert.are.equal("libborglua.so.0\n", helpers.shell("readlink " .. q(lib .. "libborglua.so")))
    assert.are.equal("libborglua.so.0.1.0\n",
      helpers.shell("readlink " .. q(lib .. "libborglua.so.0")))
    local output = helpers.shell("objdump -p " .. q(lib .. "libborglua.so.0.1.0"))
    assert.truthy(output:find("SONAME%s+libborglua%.so%.0\n"), output)
  end)

  it("installs a program that runs", function()
    local output, status = helpers.shell(q(prefix .. "/bin/borglua")
      .. " -e 'print(type(borg.create))' 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal("function\n", output)
  end)

  it("installs a man page that renders without warnings", function()
    local page = prefix .. "/share/man/man1/borglua.1"
    local warnings = helpers.shell("MANWIDTH=80 man --warnings -l " .. q(page)
      .. " 2>&1 >/dev/null")
    assert.are.equal("", warnings)
    local text = helpers.shell("MANWIDTH=80 man -l " .. q(page) .. " 2>/dev/null")
    for _, section in ipairs { "NAME", "SYNOPSIS", "OPTIONS", "INTERACTIVE USE",
                               "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES" } do
      assert.truthy(text:find("\n" .. section .. "\n", 1, true), section)
    end
  end)

  it("builds the embedding example with pkg-config", function()
    local pkg = "PKG_CONFIG_PATH=" .. q(prefix .. "/lib/pkgconfig")
      .. " pkg-config --define-variable=prefix=" .. q(prefix)
    local flags, status = helpers.shell(pkg .. " --cflags --libs borglua")
    assert.are.equal(0, status)
    assert.truthy(flags:find("-I" .. prefix .. "/include", 1, true), flags)
    assert.truthy(flags:find("-L" .. prefix .. "/lib -lborglua", 1, true), flags)

    local output
    output, status = helpers.shell("cc -o " .. q(dir .. "/example") .. " "
      .. q(helpers.top .. "/scripts/embed-example.c") .. " " .. flags:gsub("\n", "")
      .. " 2>&1")
    assert.are.equal(0, status, output)
    local libs = helpers.shell("LD_LIBRARY_PATH=" .. q(prefix .. "/lib") .. " ldd "
      .. q(dir .. "/example"))
    assert.truthy(libs:find("libborglua.so.0 => " .. prefix .. "/lib/libborglua.so.0",
      1, true), libs)

    local work = dir .. "/work"
    os.execute("mkdir -p " .. q(work))
    helpers.source_tree(work)
    output, status = helpers.shell("env -u BORG_REPO -u BORG_PASSPHRASE"
      .. " -u BORG_PASSCOMMAND BORG_BASE_DIR=" .. q(work .. "/base")
      .. " BORG_SELFTEST=disabled LD_LIBRARY_PATH=" .. q(prefix .. "/lib") .. " "
      .. q(dir .. "/example") .. " " .. q(work) .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.truthy(output:find("^archive example%-%S+: 3 files\n$"), output)
  end)

  it("puts borg.so where stock lua5.4 finds it", function()
    local cmod = prefix .. "/lib/lua/5.4"
    local cpath = helpers.shell("lua5.4 -e 'print(package.cpath)'")
    assert.truthy(cpath:find("/usr/local/lib/lua/5.4/?.so", 1, true), cpath)
    local output, status = helpers.shell("lua5.4 -e " .. q("package.cpath = '" .. cmod
      .. "/?.so;' .. package.cpath; print(package.searchpath('borg', package.cpath),"
      .. " type(require('borg').create))") .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal(cmod .. "/borg.so\tfunction\n", output)
  end)

  it("installs systemd units that verify", function()
    if os.execute("command -v systemd-analyze >/dev/null") ~= true then
      pending("systemd-analyze is not installed")
      return
    end
    -- The units name /usr/local paths; point them into the stage.
    local units = dir .. "/units"
    os.execute("mkdir -p " .. q(units))
    for _, name in ipairs { "borglua-nightly.service", "borglua-nightly.timer" } do
      local text = helpers.read(prefix .. "/share/borglua/" .. name)
      helpers.write(units .. "/" .. name, (text:gsub("/usr/local/", prefix .. "/")))
    end
    local output, status = helpers.shell("MANPATH=" .. q(prefix .. "/share/man")
      .. " systemd-analyze verify " .. q(units .. "/borglua-nightly.service") .. " "
      .. q(units .. "/borglua-nightly.timer") .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal("", output)
    local service = helpers.read(units .. "/borglua-nightly.service")
    assert.truthy(service:find("\nExecStart=" .. prefix .. "/bin/borglua " .. prefix
      .. "/share/borglua/nightly.lua ", 1, true), service)
  end)

  it("removes exactly its files on uninstall", function()
    local output, status = make("uninstall PREFIX=/usr/local DESTDIR=" .. q(stage))
    assert.are.equal(0, status, output)
    assert.are.same({ "/usr/local/lib/other.so" }, tree(stage))
  end)
end)
