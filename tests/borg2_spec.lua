-- The borg 2 layer: how a call in borgapi's names and borg 1.2's
-- locations becomes borg 2's command line, and how borg 2's exit codes
-- become error objects. A stand-in borg 2 (tests/bin/fake-borg2) records
-- each argument vector; it also plays a later beta with repo-* commands
-- and modern exit codes, which the installed 2.0.0b5 does not have.

local borg = require "borg"
local helpers = require "helpers"

-- Return an instance that runs the stand-in borg 2 under the link name
-- `name` in dir, and the path of its argument record.
local function fake2(dir, name, settings)
  local link = dir .. "/" .. name
  os.execute("ln -s " .. helpers.quote(helpers.top .. "/tests/bin/fake-borg2") .. " "
    .. helpers.quote(link))
  settings = settings or {}
  settings.borg = link
  settings.env = settings.env or {}
  settings.env.FAKE_BORG_ARGV = dir .. "/argv"
  return helpers.instance(dir, settings), dir .. "/argv"
end

-- Call fn and return the error object it raised.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(borg.is_error(err), "expected an error object, got " .. tostring(err))
  return err
end

describe("borg 2 command lines", function()
  local dir, api, argv_path

  before_each(function()
    dir = helpers.tmpdir()
    api, argv_path = fake2(dir, "borg2-b5")
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Run the call and return the recorded argument vector as one string.
  local function line(command, args)
    api[command](args, { env = { FAKE_BORG_STDOUT = "{}" } })
    return table.concat(helpers.recorded_argv(argv_path), " ")
  end

  local cases = {
    { "init makes a repository with rcreate", "init", { "/r" },
      "rcreate --log-json --encryption=repokey-aes-ocb --repo=/r" },
    { "init maps 1.2's repokey-blake2", "init", { "/r", encryption = "repokey-blake2" },
      "rcreate --log-json --encryption=repokey-blake2-aes-ocb --repo=/r" },
    { "init keeps a borg 2 mode", "init", { "/r", encryption = "none" },
      "rcreate --log-json --encryption=none --repo=/r" },
    { "list of a repository is rlist", "list", { "/r" },
      "rlist --log-json --json --repo=/r" },
    { "list of an archive names it", "list", { "/r::a1" },
      "list --log-json --json-lines --repo=/r -- a1" },
    { "info of a repository is rinfo", "info", { "/r" },
      "rinfo --log-json --json --repo=/r" },
    { "info of an archive matches its name", "info", { "/r::a1" },
      "info --log-json --json --match-archives=id:a1 --repo=/r" },
    { "info with last is about archives", "info", { "/r", last = 2 },
      "info --log-json --json --last=2 --repo=/r" },
    { "delete of a repository is rdelete", "delete", { "/r" },
      "rdelete --log-json --repo=/r" },
    { "delete of an archive matches its name", "delete", { "/r::a1" },
      "delete --log-json --match-archives=id:a1 --repo=/r" },
    { "delete of several archives matches all", "delete", { "/r", "a.1", "b+2" },
      "delete --log-json --match-archives=re:^(?:a\\.1|b\\+2)$ --repo=/r" },
    { "create names the archive", "create", { "/r::{now}", "/src", "-odd" },
      "create --log-json --repo=/r -- {now} /src -odd" },
    { "a location of BORG_REPO gives no --repo", "create", { "::a1", "/src" },
      "create --log-json -- a1 /src" },
    { "diff names both archives", "diff", { "/r::a1", "a2" },
      "diff --log-json --json-lines --repo=/r -- a1 a2" },
    { "rename names both archives", "rename", { "/r::a1", "a2" },
      "rename --log-json --repo=/r -- a1 a2" },
    { "extract names the archive", "extract", { "/r::a1", "src/a" },
      "extract --log-json --repo=/r -- a1 src/a" },
    { "check of an archive matches it", "check", { "/r::a1" },
      "check --log-json --match-archives=id:a1 --repo=/r" },
    { "prune turns glob_archives into a pattern", "prune",
      { "/r", glob_archives = "host-*", keep_daily = 7 },
      "prune --log-json --keep-daily=7 --match-archives=sh:host-* --repo=/r" },
    { "prune turns prefix into a pattern", "prune", { "/r", prefix = "a*b", keep_last = 1 },
      "prune --log-json --keep-last=1 --match-archives=sh:a[*]b* --repo=/r" },
    { "extract renames numeric_owner", "extract", { "/r::a", numeric_owner = true },
      "extract --log-json --numeric-ids --repo=/r -- a" },
    { "config shifts its positionals", "config", { "/r", { "append_only", "1" } },
      "config --log-json --repo=/r -- append_only 1" },
    { "key_export without a path writes to stdout", "key_export", { "/r" },
      "key export --log-json --repo=/r -- -" },
    { "transfer takes the repository first", "transfer",
      { "/new", other_repo = "/old", upgrader = "From12To20" },
      "transfer --log-json --other-repo=/old --repo=/new --upgrader=From12To20" },
    { "rcompress takes the repository first", "rcompress", { "/r", compression = "lz4" },
      "rcompress --log-json --compression=lz4 --repo=/r" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      assert.are.equal(case[4], line(case[2], case[3]))
    end)
  end

  it("keeps an instance option only where borg 2 takes it", function()
    local inst, path = fake2(dir, "borg2-opts", { options = { lock_wait = 5,
                                                              glob_archives = "x*" } })
    inst.compact { "/r" }
    assert.are.equal("compact --log-json --lock-wait=5 --repo=/r",
      table.concat(helpers.recorded_argv(path), " "))
  end)

  it("uses repo-* names where the help lists them", function()
    local beta, path = fake2(dir, "borg2-beta")
    beta.init { "/r", encryption = "none" }
    assert.are.equal("repo-create --log-json --encryption=none --repo=/r",
      table.concat(helpers.recorded_argv(path), " "))
    local run = { env = { FAKE_BORG_STDOUT = "{}" } }
    beta.list({ "/r" }, run)
    assert.are.equal("repo-list", helpers.recorded_argv(path)[1])
    beta.delete { "/r" }
    assert.are.equal("repo-delete", helpers.recorded_argv(path)[1])
    beta.list({ "/r::a" }, run)
    assert.are.equal("list", helpers.recorded_argv(path)[1])
  end)

  it("reports the version and the repository prefix", function()
    local version = api:version()
    assert.are.equal(2, version.major)
    assert.are.equal("2.0.0b5", version.string)
    assert.are.equal("r", version.repository_prefix)
  end)
end)

describe("borg 2 usage errors", function()
  local dir, api, argv_path

  before_each(function()
    dir = helpers.tmpdir()
    api, argv_path = fake2(dir, "borg2-b5")
  end)

  after_each(function()
    assert.are.equal(0, helpers.recorded_calls(argv_path))
    helpers.rmdir(dir)
  end)

  local cases = {
    { "create without an archive", function() api.create { "/r", "/src" } end,
      "create", "borg 2's create needs an archive: write the location as \"repo::archive\"" },
    { "compact of an archive", function() api.compact { "/r::a" } end,
      "compact", "borg 2's compact works on a whole repository: write the location"
        .. " without \"::a\"" },
    { "a 1.2 option without equivalent", function() api.diff { "/r::a", "b",
        content_only = true } end,
      "diff", "option 'content_only' of borg 1.2 has no equivalent in borg 2's diff;"
        .. " leave it out for this borg" },
    { "two archive patterns", function() api.prune { "/r", prefix = "a",
        glob_archives = "b*", keep_last = 1 } end,
      "prune", "give only one of 'glob_archives', 'prefix' and 'match_archives':"
        .. " borg 2 takes a single archive pattern" },
    { "an archive and a pattern", function() api.info { "/r::a", glob_archives = "b*" } end,
      "info", "give either an archive in the location or an archive pattern, not both" },
    { "a 1.2-only command", function() api.upgrade { "/r" } end,
      "upgrade", "'upgrade' is a borg 1.2 command that borg 2 (2.0.0b5) does not have:"
        .. " borg 2 reads 1.2 repositories only through transfer: create a new"
        .. " repository with init and copy the archives with borg.transfer{ new,"
        .. " other_repo = old, upgrader = \"From12To20\" }" },
    { "an unknown borg 2 option", function() api.rcompress { "/r", compresion = "lz4" } end,
      "rcompress", "unknown option 'compresion' (did you mean 'compression'?)" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local err = raised(case[2])
      assert.are.equal("usage", err.kind)
      assert.are.equal(case[3], err.command)
      assert.are.equal(case[4], err.message)
    end)
  end

  it("a borg 2 command on borg 1.2", function()
    local old, path = helpers.fake_instance(dir)
    local err = raised(old.transfer, { "/new", other_repo = "/old" })
    assert.are.equal("usage", err.kind)
    assert.are.equal("'transfer' is a borg 2 command, and " .. helpers.fake_borg
      .. " is borg 1.2.4; run it on an instance made with borg.new{ borg = \"borg2\" }",
      err.message)
    assert.are.equal(0, helpers.recorded_calls(path))
  end)
end)

describe("modern exit codes", function()
  local dir, api

  before_each(function()
    dir = helpers.tmpdir()
    api = fake2(dir, "borg2-beta", { env = {} })
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Return the error of a list call whose borg exits with rc and writes
  -- stderr (nil: nothing).
  local function failure(rc, stderr)
    return raised(api.list, { "/r" }, { env = { FAKE_BORG_EXIT = rc,
                                                FAKE_BORG_STDERR = stderr or false } })
  end

  it("an error code gives the msgid of 1.2's record", function()
    local modern = failure(13)
    local real = raised(helpers.instance(dir).list, { dir .. "/missing" })
    assert.are.equal(real.kind, modern.kind)
    assert.are.equal(real.msgid, modern.msgid)
    assert.are.equal("Repository.DoesNotExist", modern.msgid)
    assert.are.equal(13, modern.rc)
  end)

  it("a record's msgid wins over the code's", function()
    local err = failure(73, '{"type": "log_message", "levelname": "ERROR", "name": "x",'
      .. ' "message": "Failed to create/acquire the lock /r/lock (timeout).",'
      .. ' "msgid": "LockTimeout"}')
    assert.are.equal("borg", err.kind)
    assert.are.equal("LockTimeout", err.msgid)
    assert.are.equal("failed to create/acquire the lock /r/lock (timeout)", err.message)
  end)

  it("the passphrase code is a prompt error", function()
    local err = failure(50)
    assert.are.equal("prompt", err.kind)
    assert.are.equal("NoPassphraseFailure", err.msgid)
  end)

  it("a warning code is a warning", function()
    local _, run = api.create({ "/r::a", "/src" }, { env = { FAKE_BORG_EXIT = 107 } })
    assert.are.equal("warning", run.status)
    assert.are.equal(107, run.rc)
  end)

  it("a warning code from check is an error", function()
    local err = raised(api.check, { "/r" }, { env = { FAKE_BORG_EXIT = 100 } })
    assert.are.equal("borg", err.kind)
  end)
end)
