-- The policies shipped in scripts/: every source given on the command
-- line ends up in the archive, and each policy runs in plan mode.

local helpers = require "helpers"

local q = helpers.quote

-- Return the shell prefix that runs borglua in dir with a clean borg
-- environment and a passphrase.
local function borglua_in(dir)
  return "cd " .. q(dir) .. " && env -u BORG_REPO -u BORG_PASSCOMMAND"
    .. " -u BORG_PASSPHRASE_FD -u BORG_KEYS_DIR -u BORG_CACHE_DIR -u BORG_CONFIG_DIR"
    .. " -u BORG_SECURITY_DIR BORG_BASE_DIR=" .. q(dir .. "/base")
    .. " BORG_PASSPHRASE=secret BORG_SELFTEST=disabled " .. q(helpers.borglua)
end

describe("the shipped policies", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
    for _, name in ipairs { "one", "two", "three" } do
      os.execute("mkdir -p " .. q(dir .. "/" .. name))
      helpers.write(dir .. "/" .. name .. "/file-" .. name, name .. "\n")
    end
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Return the paths in the newest archive of repo, joined by spaces.
  local function newest_paths(repo)
    local api = helpers.instance(dir, { env = { BORG_PASSPHRASE = "secret",
                                                BORG_BASE_DIR = dir .. "/base" } })
    local archives = api.list { repo }.archives
    local paths = {}
    for _, item in ipairs(api.list { repo .. "::" .. archives[#archives].name }) do
      paths[#paths + 1] = item.path
    end
    table.sort(paths)
    return table.concat(paths, " ")
  end

  local cases = {
    { "nightly.lua", {} },
    { "portable.lua", { "borg" } },
  }
  for _, case in ipairs(cases) do
    local script, leading = case[1], case[2]

    it(script .. " backs up every source", function()
      local words = {}
      for _, word in ipairs(leading) do
        words[#words + 1] = q(word)
      end
      local output, status = helpers.shell(borglua_in(dir) .. " "
        .. q(helpers.top .. "/scripts/" .. script) .. " " .. table.concat(words, " ")
        .. " repo one two three 2>&1")
      assert.are.equal(0, status, output)
      assert.are.equal("one one/file-one three three/file-three two two/file-two",
        newest_paths(dir .. "/repo"))
    end)
  end

  local plans = {
    { "nightly.lua", "repo one two" },
    { "portable.lua", "borg repo one two" },
    { "laptop.lua", "" },
    { "server.lua", "" },
  }
  for _, case in ipairs(plans) do
    local script, words = case[1], case[2]

    it(script .. " runs in plan mode", function()
      local output, status = helpers.shell(borglua_in(dir) .. " --plan "
        .. q(helpers.top .. "/scripts/" .. script) .. " " .. words .. " 2>&1")
      assert.are.equal(0, status, output)
      assert.truthy(output:find("\nborg create ", 1, true)
        or output:find("^borg create "), output)
      -- Nothing ran: no repository was made.
      assert.is_nil(io.open(dir .. "/repo/config"))
    end)
  end
end)
