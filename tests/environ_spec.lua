-- set_environ and unset_environ: borgapi's sources and precedence, what
-- reaches the children, and a host environment that never changes.

local borg = require "borg"
local core = require "borg.core"
local env = require "borg.env"
local helpers = require "helpers"

local q = helpers.quote

-- Return the variables of names that a child of api would get.
local function child_view(api, names)
  local vars = env.child(api, "list", {}).vars
  local view = {}
  for _, name in ipairs(names) do
    view[name] = vars[name]
  end
  return view
end

local function usage_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(borg.is_error(err), tostring(err))
  assert.are.equal("usage", err.kind)
  return err
end

describe("set_environ", function()
  local dir, api

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("follows borgapi's documented sequence", function()
    local names = { "FOO", "SPAM", "BAZ" }
    assert.are.same({}, child_view(api, names))
    api:set_environ{ dictionary = { FOO = "BAR", SPAM = false } }
    assert.are.same({ FOO = "BAR", SPAM = "False" }, child_view(api, names))
    api:unset_environ("FOO")
    assert.are.same({ SPAM = "False" }, child_view(api, names))
    api:set_environ{ BAZ = "HAM" }
    assert.are.same({ SPAM = "False", BAZ = "HAM" }, child_view(api, names))
    api:unset_environ("OTHER")
    assert.are.same({ SPAM = "False", BAZ = "HAM" }, child_view(api, names))
    api:unset_environ()
    assert.are.same({ SPAM = "False" }, child_view(api, names))
  end)

  it("turns values into strings as borgapi does", function()
    api.set_environ{ A = 5, B = 1.5, C = true, D = false, E = "text" }
    assert.are.same({ A = "5", B = "1.5", C = "True", D = "False", E = "text" },
      child_view(api, { "A", "B", "C", "D", "E" }))
  end)

  it("prefers filename over dictionary over names", function()
    helpers.write(dir .. "/vars.env", "FROM_FILE=1\n")
    api:set_environ{ filename = dir .. "/vars.env", dictionary = { FROM_DICT = "1" },
                     FROM_NAME = "1" }
    assert.are.same({ FROM_FILE = "1" },
      child_view(api, { "FROM_FILE", "FROM_DICT", "FROM_NAME" }))
    api:unset_environ()
    api:set_environ{ dictionary = { FROM_DICT = "2" }, FROM_NAME = "2" }
    assert.are.same({ FROM_DICT = "2" },
      child_view(api, { "FROM_FILE", "FROM_DICT", "FROM_NAME" }))
  end)

  it("expands a .env file from the instance's environment", function()
    helpers.write(dir .. "/vars.env", "export CACHE=\"${BORG_BASE_DIR}/cache\"\n"
      .. "# a comment\nNO_VALUE\nLIST='a b'\n")
    local names = api:set_environ{ filename = dir .. "/vars.env" }
    assert.are.same({ "CACHE", "LIST" }, names)
    assert.are.same({ CACHE = dir .. "/base/cache", LIST = "a b" },
      child_view(api, { "CACHE", "LIST", "NO_VALUE" }))
  end)

  it("sets nothing from a .env file with a bad line", function()
    api:set_environ{ KEPT = "1" }
    helpers.write(dir .. "/bad.env", "GOOD=1\nBAD=\"open\n")
    local err = usage_error(api.set_environ, { filename = dir .. "/bad.env" })
    assert.are.equal("cannot parse " .. dir .. "/bad.env line 2: the quoted value"
      .. " has no closing quote", err.message)
    assert.are.same({ KEPT = "1" }, child_view(api, { "GOOD", "BAD", "KEPT" }))
    api:unset_environ()
    assert.are.same({}, child_view(api, { "KEPT" }))
  end)

  it("reports a .env file it cannot read", function()
    local err = usage_error(api.set_environ, { filename = dir .. "/none.env" })
    assert.are.equal("cannot read the .env file " .. dir .. "/none.env: No such"
      .. " file or directory", err.message)
    os.execute("mkdir " .. q(dir .. "/unreadable.env"))
    err = usage_error(api.set_environ, { filename = dir .. "/unreadable.env" })
    assert.truthy(err.message:find("cannot read the .env file " .. dir
      .. "/unreadable.env: ", 1, true), err.message)
  end)

  it("rejects values it cannot pass to a child", function()
    local err = usage_error(api.set_environ, { dictionary = { A = {} } })
    assert.are.equal("set_environ dictionary value of A must be a string, a number"
      .. " or a boolean, got table", err.message)
    err = usage_error(api.set_environ, { ["A=B"] = "x" })
    assert.are.equal("set_environ has an invalid variable name \"A=B\"", err.message)
  end)

  it("loads the nearest .env above the current directory", function()
    os.execute("mkdir -p " .. q(dir .. "/top/a/b"))
    helpers.write(dir .. "/top/.env", "FOUND=top\n")
    local script = "local api = borg.new{}; api:set_environ(); "
      .. "print(require('borg.env').child(api, 'list', {}).vars.FOUND)"
    local output, status = helpers.shell("cd " .. q(dir .. "/top/a/b") .. " && "
      .. q(helpers.borglua) .. " -e " .. q(script) .. " 2>&1")
    assert.are.equal(0, status)
    assert.are.equal("top\n", output)
    output, status = helpers.shell("cd " .. q(dir) .. " && " .. q(helpers.borglua)
      .. " -e " .. q(script) .. " 2>&1")
    assert.are.equal(2, status)
    assert.truthy(output:find("no .env file in " .. dir .. " or any directory above it",
      1, true), output)
  end)

  it("never changes the host's own environment", function()
    api:set_environ{ BORGLUA_SPEC_SET = "set-by-spec" }
    api:unset_environ("PATH")
    assert.is_nil(os.getenv("BORGLUA_SPEC_SET"))
    assert.is_not_nil(os.getenv("PATH"))
    assert.is_nil(core.environ().BORGLUA_SPEC_SET)
    local proc_environ = helpers.read("/proc/self/environ")
    assert.is_nil(proc_environ:find("set-by-spec", 1, true))
    assert.are.same({}, child_view(api, { "PATH" }))
    assert.are.equal("set-by-spec", child_view(api, { "BORGLUA_SPEC_SET" }).BORGLUA_SPEC_SET)
    assert.is_nil(child_view(helpers.instance(dir), { "BORGLUA_SPEC_SET" }).BORGLUA_SPEC_SET)
  end)

  it("gives two instances their own BORG_REPO", function()
    local src = helpers.source_tree(dir)
    local first, second = helpers.instance(dir), helpers.instance(dir)
    first:set_environ{ BORG_REPO = dir .. "/one", BORG_PASSPHRASE = "first-pass" }
    second:set_environ{ BORG_REPO = dir .. "/two" }
    first.init{ "::", log_level = "error" }
    second.init{ "::", encryption = "none", log_level = "error" }
    first.create{ "::first-archive", src }
    second.create{ "::second-archive", src }
    for _ = 1, 2 do
      local one, two = first.list{ "::" }, second.list{ "::" }
      assert.are.equal(dir .. "/one", one.repository.location)
      assert.are.equal("first-archive", one.archives[1].name)
      assert.are.equal(dir .. "/two", two.repository.location)
      assert.are.equal("second-archive", two.archives[1].name)
    end
    assert.is_nil(os.getenv("BORG_REPO"))
  end)
end)

describe("environ", function()
  it("shows the instance's changes with secrets masked", function()
    local api = borg.new{ env = { BORG_REPO = "/r", BORG_PASSCOMMAND = "cat /key" } }
    api:set_environ{ AWS_SECRET_ACCESS_KEY = "abc", BORG_RSH = "ssh -i k" }
    api:unset_environ("BORG_CACHE_DIR")
    assert.are.same({
      BORG_REPO = "/r", BORG_PASSCOMMAND = env.MASK, AWS_SECRET_ACCESS_KEY = env.MASK,
      BORG_RSH = "ssh -i k", BORG_CACHE_DIR = false,
    }, api:environ())
    local with_passphrase = borg.new{ passphrase = "pw" }
    assert.are.same({ BORG_PASSPHRASE = env.MASK }, with_passphrase:environ())
  end)

  it("masks a list of NAME=value strings", function()
    assert.are.same({ "BORG_NEW_PASSPHRASE=" .. env.MASK, "BORG_REPO=/r",
                      "RESTIC_PASSWORD=" .. env.MASK },
      borg.env.mask { "BORG_NEW_PASSPHRASE=x", "BORG_REPO=/r", "RESTIC_PASSWORD=y" })
  end)

  it("shows borg's settings whose names only look secret", function()
    assert.are.same({ BORG_DISPLAY_PASSPHRASE = "no", BORG_PASSPHRASE_FD = "5",
                      BORG_PASSCOMMAND = env.MASK },
      borg.env.mask { BORG_DISPLAY_PASSPHRASE = "no", BORG_PASSPHRASE_FD = "5",
                      BORG_PASSCOMMAND = "pass show borg" })
  end)
end)
