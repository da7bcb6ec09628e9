-- The C API and the module for stock Lua: what the libraries export,
-- scripts/embed-example.c against the real borg, and build/borg.so in
-- Debian's lua5.4.

local helpers = require "helpers"

local q = helpers.quote
local build = helpers.top .. "/build"

-- Return the set of functions that src/borglua.h declares.
local function declared_api()
  local names = {}
  local header = assert(helpers.read(helpers.top .. "/src/borglua.h"))
  for name in header:gmatch("\nBORGLUA_API [^;(]-([%w_]+)%(") do
    names[name] = true
  end
  return names
end

-- Return the set of global symbols that nm lists with the given options.
local function exported(options, file)
  local output, status = helpers.shell("nm " .. options .. " " .. q(file))
  assert.are.equal(0, status, output)
  local names = {}
  for name in output:gmatch("%S+ [TDRBVWiu] (%S+)") do
    names[name] = true
  end
  return names
end

local function sorted_keys(set)
  local list = {}
  for name in pairs(set) do
    list[#list + 1] = name
  end
  table.sort(list)
  return list
end

describe("the C libraries", function()
  it("declare the documented API in borglua.h", function()
    assert.are.same({ "borglua_close", "borglua_dofile", "borglua_dostring",
                      "borglua_newstate", "borglua_openlibs", "borglua_version",
                      "luaopen_borg" }, sorted_keys(declared_api()))
  end)

  it("export only that API from libborglua.so", function()
    assert.are.same(sorted_keys(declared_api()),
      sorted_keys(exported("-D --defined-only", build .. "/libborglua.so")))
  end)

  it("export only that API from libborglua.a", function()
    assert.are.same(sorted_keys(declared_api()),
      sorted_keys(exported("-g --defined-only", build .. "/libborglua.a")))
  end)

  it("export only luaopen_borg from borg.so", function()
    assert.are.same({ "luaopen_borg" },
      sorted_keys(exported("-D --defined-only", build .. "/borg.so")))
  end)

  it("name the soname that the link points to", function()
    local output = helpers.shell("objdump -p " .. q(build .. "/libborglua.so"))
    assert.truthy(output:find("SONAME%s+libborglua%.so%.0\n"), output)
  end)
end)

describe("scripts/embed-example.c", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("creates an archive and reads its file count in C", function()
    helpers.source_tree(dir)
    local env = "env -u BORG_REPO -u BORG_PASSPHRASE -u BORG_PASSCOMMAND"
      .. " BORG_BASE_DIR=" .. q(dir .. "/base") .. " BORG_SELFTEST=disabled "
    local output, status = helpers.shell(env .. q(build .. "/embed-example") .. " "
      .. q(dir) .. " 2>&1")
    assert.are.equal(0, status, output)
    local name, count = output:match("^archive (example%-[%dT:%-]+): (%d+) files\n$")
    assert.truthy(name, output)
    -- src/a.txt, src/b.txt and src/sub/c.txt
    assert.are.equal("3", count)
    local list = helpers.shell(env .. "borg list --short " .. q(dir .. "/repo"))
    assert.are.equal(name .. "\n", list)
  end)

  it("reports a failed policy with exit status 2", function()
    -- borg init creates no missing parent directory, so it fails here.
    local output, status = helpers.shell("env BORG_BASE_DIR=" .. q(dir .. "/base")
      .. " " .. q(build .. "/embed-example") .. " " .. q(dir .. "/missing/deeper")
      .. " 2>&1")
    assert.are.equal(2, status)
    assert.truthy(output:find("^embed%-example: borg init: "), output)
  end)
end)

describe("build/borg.so in stock lua5.4", function()
  it("loads with the system's cjson and runs borg", function()
    local output, status = helpers.shell("cd " .. q(helpers.top) .. " && lua5.4 -e "
      .. q('package.cpath="build/?.so;"..package.cpath; local borg=require "borg";'
        .. ' print(borg.version().string)') .. " 2>&1")
    assert.are.equal(0, status, output)
    local expected = helpers.shell("borg --version"):match("^borg (%S+)\n")
    assert.are.equal(expected .. "\n", output)
  end)

  it("uses the system's cjson module, not a copy", function()
    local chunk = 'package.cpath = "build/?.so"; require "borg";'
      .. ' print(package.loaded["cjson.safe"] ~= nil)'
    local output, status = helpers.shell("cd " .. q(helpers.top) .. " && lua5.4 -e "
      .. q(chunk) .. " 2>&1")
    assert.are_not.equal(0, status)
    assert.truthy(output:find("module 'cjson.safe' not found", 1, true), output)
    output, status = helpers.shell("cd " .. q(helpers.top) .. " && lua5.4 -e "
      .. q(chunk:gsub('"build/%?%.so"', '"build/?.so;" .. package.cpath')) .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal("true\n", output)
  end)
end)
