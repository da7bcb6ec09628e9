-- Error objects and warnings from the real borg 1.2: each failure that a
-- backup script meets in the field, produced for real in a temporary
-- repository.

local borg = require "borg"
local core = require "borg.core"
local env = require "borg.env"
local helpers = require "helpers"

local PASSPHRASE = "correct horse"

-- Return the error object that fn(...) raises; fail when it returns.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "the call returned instead of raising")
  assert.is_true(borg.is_error(err), tostring(err))
  return err
end

-- Assert the fields every borg failure carries.
local function assert_borg_error(err, command, msgid)
  assert.are.equal("borg", err.kind)
  assert.are.equal(command, err.command)
  assert.are.equal(2, err.rc)
  assert.are.equal(msgid, err.msgid)
  assert.are.equal("string", type(err.message))
  assert.truthy(err.message:find("%S"))
  assert.are.equal("table", type(err.argv))
  assert.are.equal("--log-json", err.argv[3])
  assert.truthy(tostring(err):find("(" .. msgid .. ", rc 2)", 1, true), tostring(err))
end

-- Flip one byte in the middle of the largest segment file of repo.
local function corrupt_segment(repo)
  local listing = helpers.shell("ls -S " .. helpers.quote(repo .. "/data/0"))
  local segment = repo .. "/data/0/" .. listing:match("^(%S+)")
  local data = helpers.read(segment)
  local middle = #data // 2
  helpers.write(segment, data:sub(1, middle - 1)
    .. string.char(data:byte(middle) ~ 0xff) .. data:sub(middle + 1))
end

describe("borg failures on a real repository", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir, { log_level = "error",
                                  env = { BORG_PASSPHRASE = PASSPHRASE } })
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "repokey" }
    api.create { repo .. "::first", src }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("repository not found", function()
    local err = raised(api.list, { dir .. "/missing" })
    assert_borg_error(err, "list", "Repository.DoesNotExist")
    assert.are.equal("repository " .. dir .. "/missing does not exist", err.message)
    assert.is_false(borg.retryable(err))
  end)

  it("archive not found", function()
    local err = raised(api.list, { repo .. "::nope" })
    assert_borg_error(err, "list", "Archive.DoesNotExist")
    assert.are.equal("archive nope does not exist", err.message)
    assert.are.equal(repo .. "::nope", err.argv[#err.argv])
  end)

  it("archive already exists", function()
    local err = raised(api.create, { repo .. "::first", src })
    assert_borg_error(err, "create", "Archive.AlreadyExists")
    assert.are.equal("archive first already exists", err.message)
  end)

  it("wrong passphrase", function()
    local err = raised(api.list, { repo }, { env = { BORG_PASSPHRASE = "wrong" } })
    assert_borg_error(err, "list", "PassphraseWrong")
    assert.truthy(err.message:find("is incorrect", 1, true), err.message)
    assert.falsy(tostring(err):find("wrong", 1, true))
    assert.are.equal("The passphrase came from BORG_PASSPHRASE in the call's env. "
      .. borg.errors.HINTS.PassphraseWrong, err.hint)
    assert.is_false(borg.retryable(err))
  end)

  it("lock held by another borg", function()
    -- A second borg holds the repository lock until it is killed.
    local vars = env.apply(env.host(), helpers.clean_env(dir,
      { BORG_PASSPHRASE = PASSPHRASE }))
    local holder = assert(core.spawn {
      file = "/usr/bin/borg", env = env.list(vars), stdout = "lines",
      args = { "borg", "with-lock", repo, "sh", "-c", "echo locked; exec sleep 60" },
    })
    local kind, line = holder:read(true)
    assert.are.equal("line", kind)
    assert.are.equal("locked", line)

    local started = core.now()
    local err = raised(api.list, { repo, lock_wait = 1 })
    local waited = core.now() - started
    holder:kill()
    repeat
      kind = holder:read(true)
    until kind == "exit"

    assert_borg_error(err, "list", "LockTimeout")
    assert.truthy(err.message:find("lock.exclusive (timeout)", 1, true), err.message)
    assert.truthy(err.hint:find("lock_wait = SECONDS", 1, true), err.hint)
    assert.truthy(tostring(err):find("borg.break_lock{ REPOSITORY }", 1, true), tostring(err))
    local passed = false
    for _, word in ipairs(err.argv) do
      passed = passed or word == "--lock-wait=1"
    end
    assert.is_true(passed, "no --lock-wait=1 in the argv")
    assert.is_true(waited >= 1, "borg gave up after " .. waited .. " s")
    assert.is_true(borg.retryable(err))
    -- With the holder gone the same call works.
    assert.are.equal(1, #api.list { repo, lock_wait = 1 }.archives)
  end)

  it("source path that vanished is a warning", function()
    os.execute("mkdir " .. helpers.quote(dir .. "/gone") .. " && rmdir "
      .. helpers.quote(dir .. "/gone"))
    local stats, run = api.create { repo .. "::second", src, dir .. "/gone", json = true }
    assert.are.equal("second", stats.archive.name)
    assert.are.equal(3, stats.archive.stats.nfiles)
    assert.are.equal(1, run.rc)
    assert.are.equal("warning", run.status)
    assert.are.equal(1, #run.warnings)
    assert.are.equal(dir .. "/gone: [Errno 2] No such file or directory: 'gone'",
      run.warnings[1].message)
    assert.is_nil(run.warnings[1].msgid)
    assert.is_true(borg.warned())
    -- The archive is complete.
    local names = {}
    for _, archive in ipairs(api.list { repo }.archives) do
      names[#names + 1] = archive.name
    end
    assert.are.same({ "first", "second" }, names)
  end)

  it("unreadable file is a warning", function()
    local secret = src .. "/secret.txt"
    helpers.write(secret, "not for borg")
    os.execute("chmod 000 " .. helpers.quote(secret))
    local limited = helpers.instance(dir, {
      borg = helpers.top .. "/tests/bin/borg-no-dac",
      env = { BORG_PASSPHRASE = PASSPHRASE },
    })
    local stats, run = limited.create { repo .. "::second", src, json = true }
    assert.are.equal("second", stats.archive.name)
    assert.are.equal(1, run.rc)
    assert.are.equal("warning", run.status)
    assert.are.equal(1, #run.warnings)
    assert.are.equal(secret .. ": open: [Errno 13] Permission denied: 'secret.txt'",
      run.warnings[1].message)
    local paths = {}
    for _, item in ipairs(api.list { repo .. "::second" }) do
      paths[item.path] = item.size
    end
    assert.are.equal(6, paths[src:sub(2) .. "/a.txt"])
  end)

  it("check of a damaged repository raises", function()
    assert.is_nil((api.check { repo }))
    corrupt_segment(repo)
    local err = raised(api.check, { repo })
    assert.are.equal("borg", err.kind)
    assert.are.equal("check", err.command)
    assert.are.equal(1, err.rc)
    assert.is_nil(err.msgid)
    assert.are.equal("finished full repository check, errors found", err.message)
    local integrity = false
    for _, record in ipairs(err.log) do
      integrity = integrity or tostring(record.message):find("^Data integrity error") ~= nil
    end
    assert.is_true(integrity, "no integrity error among the log records")
  end)
end)

describe("borg.retryable", function()
  it("names lock timeouts and closed connections", function()
    for _, msgid in ipairs { "LockTimeout", "ConnectionClosed",
                             "ConnectionClosedWithHint" } do
      assert.is_true(borg.retryable(borg.errors.new { kind = "borg", msgid = msgid }))
    end
  end)

  it("rejects other failures and other values", function()
    for _, msgid in ipairs { "PassphraseWrong", "Repository.DoesNotExist",
                             "LockFailed", "Exception" } do
      assert.is_false(borg.retryable(borg.errors.new { kind = "borg", msgid = msgid }))
    end
    assert.is_false(borg.retryable(borg.errors.new { kind = "timeout" }))
    assert.is_false(borg.retryable({ msgid = "LockTimeout" }))
    assert.is_false(borg.retryable("LockTimeout"))
    assert.is_false(borg.retryable(nil))
  end)
end)
