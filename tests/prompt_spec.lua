-- borg's yes/no questions and its passphrase prompt never hang a call:
-- each becomes a "prompt" error unless confirm or on_prompt allows it.

local borg = require "borg"
local core = require "borg.core"
local helpers = require "helpers"

local q = helpers.quote

-- Seconds a refused question may take; borg itself starts in well under
-- a second, so only a wait for an answer comes near this.
local PROMPT_LIMIT = 5

-- Call fn, expect a "prompt" error within PROMPT_LIMIT seconds; return it.
local function prompt_error(fn, ...)
  local started = core.now()
  local ok, err = pcall(fn, ...)
  local elapsed = core.now() - started
  assert.is_false(ok)
  assert.is_true(borg.is_error(err), tostring(err))
  assert.are.equal("prompt", err.kind, tostring(err))
  assert.is_true(elapsed < PROMPT_LIMIT, "took " .. elapsed .. " s")
  return err
end

-- Assert that err quotes the question and names confirm and variable.
local function assert_names(err, question, variable)
  assert.truthy(err.message:find(question, 1, true), err.message)
  assert.truthy(err.message:find("confirm = true", 1, true), err.message)
  assert.truthy(err.message:find(variable, 1, true), err.message)
  assert.are.equal(variable, err.variable)
end

local function exists(path)
  local file = io.open(path .. "/config", "rb")
  if file then
    file:close()
  end
  return file ~= nil
end

describe("a yes/no question", function()
  local dir, repo, api, src

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api = helpers.instance(dir)
    api.init{ repo, encryption = "none", log_level = "error" }
    api.create{ repo .. "::first", src }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Return an instance whose borg has never seen the repository.
  local function stranger()
    return helpers.instance(dir, { env = { BORG_BASE_DIR = dir .. "/other-base" } })
  end

  local function move()
    os.execute("mv " .. q(repo) .. " " .. q(dir .. "/moved"))
    return dir .. "/moved"
  end

  it("about an unknown unencrypted repository is refused", function()
    local err = prompt_error(stranger().list, { repo })
    assert_names(err, "Warning: Attempting to access a previously unknown unencrypted"
      .. " repository! Do you want to continue? [yN]",
      "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK")
    assert.are.equal("Cache.CacheInitAbortedError", err.msgid)
    assert.truthy(err.message:find("the answer was no (from"
      .. " BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK)", 1, true), err.message)
  end)

  it("about an unknown unencrypted repository is allowed by confirm", function()
    local listing = stranger().list({ repo }, { confirm = true })
    assert.are.equal("first", listing.archives[1].name)
  end)

  it("about a moved repository is refused", function()
    local moved = move()
    local err = prompt_error(api.list, { moved })
    assert_names(err, "Warning: The repository at location " .. moved
      .. " was previously located at " .. repo .. " Do you want to continue? [yN]",
      "BORG_RELOCATED_REPO_ACCESS_IS_OK")
    assert.are.equal("Cache.RepositoryAccessAborted", err.msgid)
    assert.are.equal("first", api.list({ moved }, { confirm = true }).archives[1].name)
  end)

  it("about a moved repository follows the caller's own variable", function()
    local moved = move()
    local listing = api.list({ moved }, { env = { BORG_RELOCATED_REPO_ACCESS_IS_OK = "yes" } })
    assert.are.equal("first", listing.archives[1].name)
  end)

  it("about deleting a whole repository is refused", function()
    local err = prompt_error(api.delete, { repo })
    assert_names(err, "You requested to completely DELETE the following repository"
      .. " *including* 1 archives it contains: Repository ID:",
      "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING")
    assert.truthy(err.message:find("Type 'YES' if you understand this and want to"
      .. " continue:\"", 1, true), err.message)
    assert.is_true(exists(repo))
    api.delete({ repo }, { confirm = true })
    assert.is_false(exists(repo))
  end)

  it("about check --repair is refused", function()
    local err = prompt_error(api.check, { repo, repair = true })
    assert_names(err, "This is a potentially dangerous function. check --repair might"
      .. " lead to data loss", "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING")
    local _, run = api.check({ repo, repair = true }, { confirm = true })
    assert.are.equal(0, run.rc)
  end)

  it("goes to on_prompt, which can allow it", function()
    local moved = move()
    local asked = {}
    local listing = api.list({ moved }, { on_prompt = function(question, variable)
      asked[#asked + 1] = { question, variable }
      return "y"
    end })
    assert.are.equal("first", listing.archives[1].name)
    assert.are.equal(1, #asked)
    assert.truthy(asked[1][1]:find("was previously located at", 1, true))
    assert.are.equal("BORG_RELOCATED_REPO_ACCESS_IS_OK", asked[1][2])
  end)

  it("goes to on_prompt, which can refuse it", function()
    local _, run = api.delete({ repo .. "::first" }) -- no question for one archive
    assert.are.same({}, run.answers)
    api.create{ repo .. "::second", src }
    local err = prompt_error(api.delete, { repo }, { on_prompt = function() return false end })
    assert.truthy(err.message:find("on_prompt answered no", 1, true), err.message)
    assert.is_true(exists(repo))
    local _, deleted = api.delete({ repo }, { on_prompt = function() return true end })
    assert.are.same({ { question = deleted.answers[1].question, answer = "YES",
                        variable = "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING" } }, deleted.answers)
    assert.is_false(exists(repo))
  end)

  it("cannot be answered by on_prompt beside stdin data", function()
    local ok, err = pcall(api.create, { repo .. "::from-stdin", "-" },
      { stdin = "data", on_prompt = function() return true end })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal("run option 'on_prompt' cannot be combined with run option"
      .. " 'stdin', because borg reads the answers from the same stdin", err.message)
  end)

  it("does not read the host's stdin", function()
    local moved = move()
    local script = dir .. "/host.lua"
    helpers.write(script, [[
      local core = require "borg.core"
      local api = borg.new{ env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base")
        .. [[, BORG_SELFTEST = "disabled" } }
      local started = core.now()
      local ok, err = pcall(api.list, { ]] .. string.format("%q", moved) .. [[ })
      print(err.kind, core.now() - started < ]] .. PROMPT_LIMIT .. [[)
      print(err.message)
      print(io.read("l"), io.read("l"))
      local listing = api.list({ ]] .. string.format("%q", moved)
        .. [[ }, { confirm = true })
      print(listing.archives[1].name)
    ]])
    -- The pipe stays open after its data, as a caller's pipe might.
    local output, status = helpers.shell("(printf 'y\\nyes\\n'; sleep 8) | timeout 60 "
      .. q(helpers.borglua) .. " " .. q(script) .. " 2>&1")
    assert.are.equal(0, status, output)
    local lines = {}
    for line in output:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.are.equal("prompt\ttrue", lines[1])
    assert.truthy(lines[2]:find("BORG_RELOCATED_REPO_ACCESS_IS_OK", 1, true), lines[2])
    assert.are.equal("y\tyes", lines[3])
    assert.are.equal("first", lines[4])
  end)
end)

describe("a passphrase prompt", function()
  local dir, repo

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    helpers.instance(dir, { passphrase = "pw" }).init{ repo, log_level = "error" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("fails at once under a terminal", function()
    local script = dir .. "/tty.lua"
    helpers.write(script, [[
      local core = require "borg.core"
      local api = borg.new{ env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base")
        .. [[ } }
      print("terminal", core.isatty(0))
      local started = core.now()
      local ok, err = pcall(api.list, { ]] .. string.format("%q", repo) .. [[ })
      print(err.kind, err.msgid, core.now() - started < ]] .. PROMPT_LIMIT .. [[)
      print(err.message)
    ]])
    local output = helpers.shell("env -u BORG_PASSPHRASE -u BORG_PASSCOMMAND"
      .. " -u BORG_PASSPHRASE_FD timeout 60 script -qec "
      .. q(q(helpers.borglua) .. " " .. q(script)) .. " /dev/null 2>&1")
    assert.truthy(output:find("terminal\ttrue", 1, true), output)
    assert.truthy(output:find("prompt\tNoPassphraseFailure\ttrue", 1, true), output)
    assert.truthy(output:find("'passphrase'", 1, true), output)
    assert.truthy(output:find("BORG_PASSCOMMAND", 1, true), output)
  end)

  it("gives PassphraseWrong for a wrong passphrase", function()
    local ok, err = pcall(helpers.instance(dir, { passphrase = "wrong" }).list, { repo })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("PassphraseWrong", err.msgid)
  end)

  it("with on_prompt fails instead of reading stdin", function()
    local api = helpers.instance(dir)
    local err = prompt_error(api.list, { repo }, { on_prompt = function() return "pw" end })
    assert.are.equal("NoPassphraseFailure", err.msgid)
  end)
end)
