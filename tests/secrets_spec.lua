-- Passphrases: they reach borg on a pipe at a fixed descriptor, never in
-- its argv or environment, and only the source the script chose does.

local borg = require "borg"
local env = require "borg.env"
local helpers = require "helpers"

local q = helpers.quote

local PASSPHRASE = "s3cret-Passphrase-42"

-- Return the NUL-separated entries of a /proc file as a list.
local function entries(data)
  local list = {}
  for item in data:gmatch("(%Z+)") do
    list[#list + 1] = item
  end
  return list
end

local function has_entry(list, wanted)
  for _, item in ipairs(list) do
    if item == wanted then
      return true
    end
  end
  return false
end

local function entry_starting(list, prefix)
  for _, item in ipairs(list) do
    if item:sub(1, #prefix) == prefix then
      return item
    end
  end
  return nil
end

local function call_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(borg.is_error(err), tostring(err))
  return err
end

describe("passphrase", function()
  local dir, repo, api

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    api = helpers.instance(dir, { passphrase = PASSPHRASE })
    api.init{ repo, log_level = "error" }
    helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Run borg with-lock on the repository with a shell command that copies
  -- what the running borg process (its parent) shows in /proc, and what
  -- borg's passphrase descriptor holds (with-lock does not read it).
  -- Return the lists and that data.
  -- A borg forked by a warm server shows the server's start-up
  -- environment and command line in /proc, so this runs borg with exec.
  local function observe(inst)
    local script = "cat /proc/$PPID/environ > borg.environ;"
      .. " cat /proc/$PPID/cmdline > borg.cmdline;"
      .. " cat /proc/$PPID/fd/" .. env.PASSPHRASE_FD .. " > borg.fd 2>/dev/null || true"
    local warm = inst.warm
    inst.warm = false
    inst.with_lock({ repo, "sh", "-c", script }, { cwd = dir })
    inst.warm = warm
    return entries(assert(helpers.read(dir .. "/borg.environ"))),
           entries(assert(helpers.read(dir .. "/borg.cmdline"))),
           helpers.read(dir .. "/borg.fd")
  end

  it("reaches borg on a pipe, not in its environment or argv", function()
    local environ, cmdline, piped = observe(api)
    assert.truthy(entry_starting(environ, "BORG_BASE_DIR="))
    assert.truthy(has_entry(cmdline, "with-lock"))
    assert.truthy(has_entry(environ, "BORG_PASSPHRASE_FD=" .. env.PASSPHRASE_FD))
    assert.is_nil(entry_starting(environ, "BORG_PASSPHRASE="))
    assert.is_nil(entry_starting(environ, "BORG_PASSCOMMAND="))
    for _, item in ipairs(environ) do
      assert.is_nil(item:find(PASSPHRASE, 1, true), item)
    end
    for _, item in ipairs(cmdline) do
      assert.is_nil(item:find(PASSPHRASE, 1, true), item)
    end
    assert.are.equal(PASSPHRASE, piped)
    local listing = api.list{ repo }
    assert.are.equal("repokey", listing.encryption.mode)
  end)

  it("comes from set_environ, a dictionary or a call's env the same way", function()
    local plain = helpers.instance(dir)
    plain:set_environ{ dictionary = { BORG_PASSPHRASE = PASSPHRASE } }
    local environ, _, piped = observe(plain)
    assert.is_nil(entry_starting(environ, "BORG_PASSPHRASE="))
    assert.are.equal(PASSPHRASE, piped)
    local other = helpers.instance(dir)
    assert.are.equal("repokey",
      other.list({ repo }, { env = { BORG_PASSPHRASE = PASSPHRASE } }).encryption.mode)
    helpers.write(dir .. "/secret.env", "BORG_PASSPHRASE='" .. PASSPHRASE .. "'\n")
    other:set_environ{ filename = dir .. "/secret.env" }
    assert.are.equal("repokey", other.list{ repo }.encryption.mode)
  end)

  it("still works with 20 files open in the host", function()
    local files = {}
    for i = 1, 20 do
      files[i] = assert(io.open(dir .. "/open." .. i, "w"))
    end
    local environ, _, piped = observe(api)
    assert.are.equal(PASSPHRASE, piped)
    assert.truthy(has_entry(environ, "BORG_PASSPHRASE_FD=" .. env.PASSPHRASE_FD))
    api.create{ repo .. "::with-files-open", dir .. "/src" }
    assert.are.equal("with-files-open", api.list{ repo }.archives[1].name)
    for _, file in ipairs(files) do
      file:close()
    end
  end)

  it("never shows up in errors, runs or printed output", function()
    local wrong = helpers.instance(dir, { passphrase = "Wrong-" .. PASSPHRASE })
    local err = call_error(wrong.list, { repo })
    assert.are.equal("borg", err.kind)
    assert.are.equal("PassphraseWrong", err.msgid)
    local _, run = api.list{ repo }
    local texts = { tostring(err), err.stderr, table.concat(err.argv, " "),
                    table.concat(run.argv, " ") }
    for _, record in ipairs(err.log or {}) do
      texts[#texts + 1] = tostring(record.message)
    end
    for _, text in ipairs(texts) do
      assert.is_nil(text:find(PASSPHRASE, 1, true), text)
    end
    helpers.write(dir .. "/policy.lua", [[
      local api = borg.new{ passphrase = ]] .. string.format("%q", PASSPHRASE) .. [[,
        log_level = "debug",
        env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base") .. [[ } }
      api.create{ ]] .. string.format("%q", repo .. "::printed") .. [[,
        ]] .. string.format("%q", dir .. "/src") .. [[, list = true, stats = true }
      print(require("borg.json").encode(api.list{ ]] .. string.format("%q", repo) .. [[ }))
      local bad = borg.new{ passphrase = "x" .. ]] .. string.format("%q", PASSPHRASE) .. [[,
        env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base") .. [[ } }
      bad.list{ ]] .. string.format("%q", repo) .. [[ }
    ]])
    local output, status = helpers.shell("cd " .. q(dir) .. " && " .. q(helpers.borglua)
      .. " policy.lua 2>&1")
    assert.are.equal(2, status)
    assert.truthy(output:find("PassphraseWrong", 1, true), output)
    assert.truthy(output:find("printed", 1, true), output)
    assert.is_nil(output:find(PASSPHRASE, 1, true), output)
  end)

  it("leaves out inherited sources the script did not choose", function()
    helpers.write(dir .. "/pass", PASSPHRASE .. "\n")
    local base = "BORG_BASE_DIR=" .. q(dir .. "/base")
    local function run_host(host_env, script)
      return helpers.shell("cd " .. q(dir) .. " && env " .. base .. " " .. host_env .. " "
        .. q(helpers.borglua) .. " -e " .. q(script) .. " 2>&1")
    end
    local list = "print(#borg.new{ %s }.list{ " .. string.format("%q", repo)
      .. " }.repository.id)"
    -- The script's passphrase wins over inherited BORG_PASSPHRASE and
    -- BORG_PASSCOMMAND, which borg would otherwise take first.
    local output, status = run_host("BORG_PASSPHRASE=wrong BORG_PASSCOMMAND='echo wrong'",
      string.format(list, "passphrase = " .. string.format("%q", PASSPHRASE)))
    assert.are.equal(0, status, output)
    assert.are.equal("64\n", output)
    -- The script's passcommand wins over an inherited BORG_PASSPHRASE.
    output, status = run_host("BORG_PASSPHRASE=wrong",
      string.format(list, "env = { BORG_PASSCOMMAND = 'cat pass' }"))
    assert.are.equal(0, status, output)
    assert.are.equal("64\n", output)
    -- With no choice in the script, the inherited variable is used.
    output, status = run_host("BORG_PASSPHRASE=" .. q(PASSPHRASE), string.format(list, ""))
    assert.are.equal(0, status, output)
    -- An inherited descriptor is read once and serves every call.
    output, status = helpers.shell("cd " .. q(dir) .. " && env " .. base
      .. " BORG_PASSPHRASE_FD=5 " .. q(helpers.borglua) .. " -e "
      .. q(string.format(list, "") .. "; " .. string.format(list, "")) .. " 5<pass 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal("64\n64\n", output)
  end)

  it("is removed by a false value in a higher layer", function()
    local err = call_error(api.list, { repo }, { env = { BORG_PASSPHRASE = false } })
    assert.are.equal("prompt", err.kind)
    assert.are.equal("NoPassphraseFailure", err.msgid)
    assert.truthy(err.message:find("'passphrase'", 1, true), err.message)
    assert.truthy(err.message:find("BORG_PASSCOMMAND", 1, true), err.message)
  end)

  it("comes from BORG_PASSCOMMAND", function()
    helpers.write(dir .. "/pass", PASSPHRASE .. "\n")
    local plain = helpers.instance(dir, { env = { BORG_PASSCOMMAND = "cat " .. dir .. "/pass" } })
    assert.are.equal("repokey", plain.list{ repo }.encryption.mode)
    local environ = observe(plain)
    assert.are.equal("BORG_PASSCOMMAND=cat " .. dir .. "/pass",
      entry_starting(environ, "BORG_PASSCOMMAND="))
    assert.is_nil(entry_starting(environ, "BORG_PASSPHRASE_FD="))
  end)

  it("masks a failing passcommand's arguments", function()
    local failing = helpers.instance(dir, { log_level = "info",
      env = { BORG_PASSCOMMAND = "false WRONGPASS-7" } })
    local err = call_error(failing.list, { repo })
    assert.are.equal("PasscommandFailure", err.msgid)
    assert.truthy(err.message:find("'false', '" .. env.MASK .. "'", 1, true), err.message)
    assert.is_nil(tostring(err):find("WRONGPASS", 1, true), tostring(err))
    assert.is_nil(err.stderr:find("WRONGPASS", 1, true), err.stderr)
    -- The same call from a borglua program: what it prints on stderr.
    local output = helpers.shell("cd " .. helpers.quote(dir) .. " && env -u BORG_PASSPHRASE"
      .. " BORG_BASE_DIR=" .. helpers.quote(dir .. "/base")
      .. " BORG_PASSCOMMAND='false WRONGPASS-7' " .. helpers.quote(helpers.borglua) .. " -e "
      .. helpers.quote("borg.list{ 'repo', log_level = 'debug' }") .. " 2>&1")
    assert.truthy(output:find("PasscommandFailure", 1, true), output)
    assert.is_nil(output:find("WRONGPASS", 1, true), output)
  end)

  it("is rejected when borg would change it", function()
    local bad = helpers.instance(dir, { passphrase = "two\nlines" })
    local err = call_error(bad.list, { repo })
    assert.are.equal("usage", err.kind)
    assert.are.equal("the passphrase contains a line break; borg reads it as text lines"
      .. " and would change it", err.message)
  end)
end)

describe("key_change_passphrase", function()
  local dir, repo, api

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    api = helpers.instance(dir, { passphrase = PASSPHRASE })
    api.init{ repo, log_level = "error" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("sets BORG_NEW_PASSPHRASE without exposing it", function()
    local new = "N3w-" .. PASSPHRASE
    local _, run = api.key_change_passphrase({ repo }, { env = { BORG_NEW_PASSPHRASE = new } })
    assert.is_nil(table.concat(run.argv, " "):find(new, 1, true))
    local err = call_error(api.list, { repo })
    assert.are.equal("PassphraseWrong", err.msgid)
    local renewed = helpers.instance(dir, { passphrase = new })
    assert.are.equal("repokey", renewed.list{ repo }.encryption.mode)
  end)

  it("reports a wrong current passphrase", function()
    local wrong = helpers.instance(dir, { passphrase = "not-" .. PASSPHRASE })
    local err = call_error(wrong.key_change_passphrase, { repo },
      { env = { BORG_NEW_PASSPHRASE = "whatever-new" } })
    assert.are.equal("borg", err.kind)
    assert.are.equal("PassphraseWrong", err.msgid)
    assert.are.equal("repokey", api.list{ repo }.encryption.mode)
  end)

  it("asks for BORG_NEW_PASSPHRASE when it is missing", function()
    local err = call_error(api.key_change_passphrase, { repo })
    assert.are.equal("prompt", err.kind)
    assert.are.equal("NoPassphraseFailure", err.msgid)
    assert.truthy(err.message:find("BORG_NEW_PASSPHRASE", 1, true), err.message)
  end)

  it("rejects a new passphrase beside a passcommand", function()
    helpers.write(dir .. "/pass", PASSPHRASE)
    local plain = helpers.instance(dir, { env = { BORG_PASSCOMMAND = "cat " .. dir .. "/pass" } })
    local err = call_error(plain.key_change_passphrase, { repo },
      { env = { BORG_NEW_PASSPHRASE = "other" } })
    assert.are.equal("usage", err.kind)
    assert.truthy(err.message:find("BORG_PASSCOMMAND", 1, true), err.message)
  end)
end)
