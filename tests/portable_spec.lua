-- scripts/portable.lua runs unchanged on borg 1.2 and borg 2 and prints
-- a summary of the same shape on both.

local helpers = require "helpers"

-- Run the policy with program on repo and the source dir; return its
-- output and exit status. Its stderr (borg's warnings) goes to dir/stderr.
local function run_policy(dir, program, repo, source)
  local command = string.format("cd %s && env -u BORG_REPO -u BORG_PASSCOMMAND"
    .. " -u BORG_PASSPHRASE_FD -u BORG_KEYS_DIR -u BORG_CACHE_DIR -u BORG_CONFIG_DIR"
    .. " -u BORG_SECURITY_DIR BORG_BASE_DIR=%s BORG_PASSPHRASE=secret"
    .. " BORG_SELFTEST=disabled %s %s %s %s %s 2>>stderr",
    helpers.quote(dir), helpers.quote(dir .. "/base-" .. program),
    helpers.quote(helpers.borglua), helpers.quote(helpers.top .. "/scripts/portable.lua"),
    helpers.quote(program), helpers.quote(repo), helpers.quote(source))
  return helpers.shell(command)
end

-- Return the output with figures, sizes and the version's major number
-- replaced by placeholders: what stays is its shape.
local function shape(output)
  return (output:gsub("%d+", "#"):gsub("#%.?#* %a*B", "SIZE"))
end

-- Return the first word of each line.
local function steps(output)
  local names = {}
  for name in output:gmatch("([%w]+)[^\n]*\n") do
    names[#names + 1] = name
  end
  return table.concat(names, " ")
end

describe("scripts/portable.lua", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
    helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("prints the same summary on both versions", function()
    local outputs = {}
    for _, program in ipairs { "borg", "borg2" } do
      local repo = dir .. "/repo-" .. program
      local first, status = run_policy(dir, program, repo, "src")
      assert.are.equal(0, status, helpers.read(dir .. "/stderr"))
      -- Archive names carry the time to the second: the second run must
      -- not start within the same second as the first.
      require("borg.sys").sleep(1.1)
      local second, second_status = run_policy(dir, program, repo, "src")
      assert.are.equal(0, second_status, helpers.read(dir .. "/stderr"))
      assert.are.equal("borg init create list prune compact check", steps(first))
      assert.are.equal("borg create list prune compact check", steps(second))
      assert.truthy(second:find("list     2 archives", 1, true), second)
      outputs[program] = { shape(first), shape(second) }
    end
    assert.truthy(outputs.borg[1]:find("major version #", 1, true))
    assert.are.equal(outputs.borg[1], outputs.borg2[1])
    assert.are.equal(outputs.borg[2], outputs.borg2[2])
  end)
end)
