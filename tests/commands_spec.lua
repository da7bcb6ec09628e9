-- The commands against the real borg, on real files in temporary
-- directories.

local borg = require "borg"
local helpers = require "helpers"

local archive_names = helpers.archive_names

describe("on a new repository", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("init creates a repository and returns nothing", function()
    local result, run = api.init { repo, encryption = "none" }
    assert.is_nil(result)
    assert.are.equal(0, run.rc)
    assert.are.equal("ok", run.status)
    assert.is_not_nil(helpers.read(repo .. "/config"))
  end)

  it("init uses repokey when no encryption is given", function()
    local _, run = api.init({ repo }, { env = { BORG_PASSPHRASE = "pw" } })
    assert.are.equal("--encryption=repokey", run.argv[4])
    local info = api.info({ repo }, { env = { BORG_PASSPHRASE = "pw" } })
    assert.are.equal("repokey", info.encryption.mode)
  end)

  it("create with json returns the decoded stats", function()
    api.init { repo, encryption = "none" }
    local stats, run = api.create { repo .. "::first", src, json = true }
    assert.are.equal("first", stats.archive.name)
    assert.are.equal(3, stats.archive.stats.nfiles)
    assert.are.equal("integer", math.type(stats.archive.stats.original_size))
    -- the three files hold 6014 bytes; borg adds the size of its metadata
    assert.is_true(stats.archive.stats.original_size >= 6 + 6000 + 8)
    assert.are.equal(repo, stats.repository.location)
    assert.are.equal("ok", run.status)
    assert.is_true(run.duration > 0)
  end)

  it("create with stats returns the same document", function()
    api.init { repo, encryption = "none" }
    local stats = api.create { repo .. "::first", src, stats = true }
    assert.are.equal(3, stats.archive.stats.nfiles)
  end)

  it("create with list returns the file records", function()
    api.init { repo, encryption = "none" }
    local list = api.create { repo .. "::first", src, list = true }
    local seen = {}
    for _, record in ipairs(list) do
      seen[record.path] = record.status
    end
    assert.are.equal("A", seen[src .. "/a.txt"])
    assert.are.equal("A", seen[src .. "/sub/c.txt"])
    assert.are.equal("d", seen[src .. "/sub"])
  end)

  it("create with list and json returns both, keyed", function()
    api.init { repo, encryption = "none" }
    local result = api.create { repo .. "::first", src, list = true, json = true }
    assert.are.equal(3, result.stats.archive.stats.nfiles)
    assert.is_true(#result.list >= 3)
  end)

  it("create without outputs returns nothing", function()
    api.init { repo, encryption = "none" }
    local result, run = api.create { repo .. "::first", src }
    assert.is_nil(result)
    assert.are.equal(0, run.rc)
  end)

  it("create --dry-run with json returns no stats and stores nothing", function()
    api.init { repo, encryption = "none" }
    local result = api.create { repo .. "::first", src, json = true, dry_run = true }
    assert.is_nil(result)
    assert.are.same({}, archive_names(api, repo))
  end)

  it("create of \"-\" stores every byte given as stdin", function()
    api.init { repo, encryption = "none" }
    local data = {}
    for i = 1, 200000 do
      data[i] = string.char(i % 256)
    end
    data = table.concat(data):rep(10)
    api.create({ repo .. "::stream", "-", stdin_name = "data.bin" }, { stdin = data })
    local items = api.list { repo .. "::stream" }
    assert.are.equal("data.bin", items[1].path)
    assert.are.equal(#data, items[1].size)
    local extracted = api.extract { repo .. "::stream", stdout = true }
    assert.are.equal(#data, #extracted)
    assert.is_true(extracted == data)
  end)

  it("create backs up a path that starts with a dash", function()
    api.init { repo, encryption = "none" }
    helpers.write(dir .. "/-rf", "not an option\n")
    api.create({ repo .. "::dash", "-rf" }, { cwd = dir })
    local items = api.list { repo .. "::dash" }
    assert.are.equal(1, #items)
    assert.are.equal("-rf", items[1].path)
  end)

  it("reports a missing source as a warning and still returns the stats", function()
    api.init { repo, encryption = "none" }
    local stats, run = api.create { repo .. "::partial", src, dir .. "/vanished",
                                    json = true }
    assert.are.equal(3, stats.archive.stats.nfiles)
    assert.are.equal(1, run.rc)
    assert.are.equal("warning", run.status)
    assert.are.equal(1, #run.warnings)
    assert.truthy(run.warnings[1].message:find(dir .. "/vanished", 1, true))
    assert.is_true(borg.warned())
    assert.are.same({ "partial" }, archive_names(api, repo))
  end)
end)

describe("on a repository with archives", function()
  local dir, api, repo, src

  lazy_setup(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    api.create { repo .. "::one", src }
    helpers.write(src .. "/d.txt", "delta\n")
    api.create { repo .. "::two", src }
  end)

  lazy_teardown(function()
    helpers.rmdir(dir)
  end)

  it("list of the repository returns the decoded document", function()
    local listing = api.list { repo }
    assert.are.equal(2, #listing.archives)
    assert.are.equal("one", listing.archives[1].name)
    assert.are.equal("two", listing.archives[2].name)
    assert.are.equal("none", listing.encryption.mode)
  end)

  it("list of an archive returns an array of items", function()
    local items = api.list { repo .. "::two" }
    local paths = {}
    for _, item in ipairs(items) do
      paths[item.path] = item
    end
    assert.is_not_nil(paths[src:sub(2) .. "/d.txt"])
    assert.are.equal(6, paths[src:sub(2) .. "/d.txt"].size)
    assert.are.equal("-", paths[src:sub(2) .. "/a.txt"].type)
    assert.are.equal("d", paths[src:sub(2) .. "/sub"].type)
  end)

  it("list of an archive with one match is still an array", function()
    local items = api.list { repo .. "::one", src:sub(2) .. "/a.txt" }
    assert.are.equal(1, #items)
    assert.are.equal(src:sub(2) .. "/a.txt", items[1].path)
  end)

  it("list of an archive with no match is an empty array", function()
    local items = api.list { repo .. "::one", "no/such/path" }
    assert.are.same({}, items)
  end)

  it("info of the repository returns the decoded document", function()
    local info = api.info { repo }
    assert.are.equal(repo, info.repository.location)
    assert.is_nil(info.archives)
    assert.are.equal("integer", math.type(info.cache.stats.total_chunks))
  end)

  it("info of an archive returns its stats", function()
    local info = api.info { repo .. "::two" }
    assert.are.equal(1, #info.archives)
    assert.are.equal("two", info.archives[1].name)
    assert.are.equal(4, info.archives[1].stats.nfiles)
  end)

  it("check returns nothing when the repository is healthy", function()
    local result, run = api.check { repo }
    assert.is_nil(result)
    assert.are.equal(0, run.rc)
  end)

  it("prune --dry-run with list names what it would keep and prune", function()
    local list = api.prune { repo, dry_run = true, list = true, keep_last = 1 }
    assert.are.equal(2, #list)
    assert.are.equal("keep", list[1].action)
    assert.are.equal("two", list[1].archive)
    assert.are.equal("secondly", list[1].rule)
    assert.are.equal(1, list[1].rule_number)
    assert.are.equal("would_prune", list[2].action)
    assert.are.equal("one", list[2].archive)
    assert.truthy(list[2].id:find("^%x+$"))
    assert.are.same({ "one", "two" }, archive_names(api, repo))
  end)
end)

describe("changing archives", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    api.create { repo .. "::one", src }
    api.create { repo .. "::two", src }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("prune with list and stats prunes and returns both", function()
    local result = api.prune { repo, list = true, stats = true, keep_last = 1 }
    assert.are.equal("keep", result.list[1].action)
    assert.are.equal("prune", result.list[2].action)
    assert.are.equal("one", result.list[2].archive)
    assert.is_true(result.stats.approximate)
    assert.are.equal("integer", math.type(result.stats.deleted.original_size))
    assert.is_true(result.stats.deleted.original_size < 0)
    assert.are.equal("integer", math.type(result.stats.chunk_index.total_chunks))
    assert.are.same({ "two" }, archive_names(api, repo))
  end)

  it("prune without outputs returns nothing", function()
    local result = api.prune { repo, keep_last = 1 }
    assert.is_nil(result)
    assert.are.same({ "two" }, archive_names(api, repo))
  end)

  it("delete of an archive with stats returns the deleted sizes", function()
    local stats = api.delete { repo .. "::one", stats = true }
    assert.are.equal("integer", math.type(stats.deleted.original_size))
    assert.are.same({ "two" }, archive_names(api, repo))
  end)

  it("delete without outputs returns nothing", function()
    assert.is_nil(api.delete { repo .. "::two" })
    assert.are.same({ "one" }, archive_names(api, repo))
  end)

  it("rename gives an archive a new name", function()
    assert.is_nil(api.rename { repo .. "::one", "first" })
    assert.are.same({ "first", "two" }, archive_names(api, repo))
  end)

  it("compact returns borg's info records when asked for them", function()
    api.delete { repo .. "::one" }
    local records, run = api.compact { repo, log_level = "info" }
    assert.are.equal(0, run.rc)
    local freed
    for _, record in ipairs(records) do
      freed = freed or record.message:match("compaction freed about")
    end
    assert.is_not_nil(freed)
  end)

  it("compact at the default level returns nothing", function()
    assert.is_nil(api.compact { repo })
  end)
end)

describe("failures", function()
  local dir, api

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("keeps borg's msgid at log level critical", function()
    local ok, err = pcall(api.list, { dir .. "/missing", log_level = "critical" })
    assert.is_false(ok)
    assert.are.equal("Repository.DoesNotExist", err.msgid)
    for _, word in ipairs(err.argv) do
      assert.are_not.equal("--error", word)
      assert.are_not.equal("--critical", word)
    end
  end)

  it("a repository that does not exist raises a borg error", function()
    local ok, err = pcall(api.list, { dir .. "/missing" })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("list", err.command)
    assert.are.equal(2, err.rc)
    assert.are.equal("Repository.DoesNotExist", err.msgid)
    assert.are.equal("repository " .. dir .. "/missing does not exist", err.message)
    assert.are.equal("borg list: repository " .. dir .. "/missing does not exist"
      .. " (Repository.DoesNotExist, rc 2). Check the path, or create the repository"
      .. " with borg.init{ REPOSITORY, encryption = ... }", tostring(err))
    assert.are.equal(borg.errors.HINTS["Repository.DoesNotExist"], err.hint)
    assert.are.same({ "borg", "list", "--log-json", "--json", "--", dir .. "/missing" },
      err.argv)
  end)

  it("an archive that exists already raises a borg error", function()
    local repo = dir .. "/repo"
    local src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    api.create { repo .. "::same", src }
    local ok, err = pcall(api.create, { repo .. "::same", src })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("Archive.AlreadyExists", err.msgid)
  end)

  it("an argument borg's parser rejects raises a usage error", function()
    local repo = dir .. "/repo"
    local src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    local ok, err = pcall(api.create, { repo .. "::a", src, compression = 3 })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal(2, err.rc)
    assert.are.equal("borg rejected the arguments: argument -C/--compression: invalid"
      .. " CompressionSpec value: '3'", err.message)
    -- It points at the caller's line, as the library's own usage errors do.
    assert.matches("commands_spec%.lua:%d+$", err.where)
  end)

  it("explains a misplaced archive", function()
    local repo = dir .. "/repo"
    local src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    local ok, err = pcall(api.create, { src, repo .. "::a" })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.truthy(err.message:find("No archive specified; the archive goes first, as"
      .. " REPOSITORY::ARCHIVE", 1, true), err.message)
  end)

  it("a borg crash names the exception", function()
    local repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
    -- borg 1.2.4 crashes on a path argument that is not valid UTF-8
    os.execute("touch " .. helpers.quote(dir .. "/caf\233"))
    local ok, err = pcall(api.create, { repo .. "::a", dir .. "/caf\233" })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("Exception", err.msgid)
    assert.truthy(err.message:find("^borg crashed: .*surrogates not allowed"), err.message)
  end)

  it("a missing borg program raises a spawn error naming it", function()
    local missing = helpers.instance(dir, { borg = dir .. "/no-borg" })
    local ok, err = pcall(missing.list, { dir .. "/repo" })
    assert.is_false(ok)
    assert.are.equal("spawn", err.kind)
    assert.are.equal("cannot run '" .. dir .. "/no-borg': no such file or directory"
      .. " (ENOENT); install borgbackup, or give the program's path as"
      .. " borg.new{ borg = \"/path/to/borg\" }", err.message)
  end)

  it("a borg program that is not executable raises a spawn error", function()
    helpers.write(dir .. "/not-executable", "#!/bin/sh\n")
    local broken = helpers.instance(dir, { borg = dir .. "/not-executable" })
    local ok, err = pcall(broken.check, { dir .. "/repo" })
    assert.is_false(ok)
    assert.are.equal("spawn", err.kind)
    assert.are.equal("cannot run '" .. dir .. "/not-executable': permission denied"
      .. " (EACCES); check that the file is an executable program", err.message)
  end)

  it("a borg program found on PATH by name runs", function()
    local named = helpers.instance(dir, { borg = "borg" })
    local ok, err = pcall(named.list, { dir .. "/missing" })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
  end)

  it("a repository with a wrong passphrase raises PassphraseWrong", function()
    local repo = dir .. "/repo"
    api.init({ repo }, { env = { BORG_PASSPHRASE = "right" } })
    local ok, err = pcall(api.list, { repo }, { env = { BORG_PASSPHRASE = "wrong" } })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("PassphraseWrong", err.msgid)
  end)

  it("a repository without a passphrase fails at once with a prompt error", function()
    local repo = dir .. "/repo"
    api.init({ repo }, { env = { BORG_PASSPHRASE = "right" } })
    local ok, err = pcall(api.list, { repo }, { timeout = 30 })
    assert.is_false(ok)
    assert.are.equal("prompt", err.kind)
    assert.are.equal("NoPassphraseFailure", err.msgid)
  end)
end)

describe("the version probe", function()
  it("returns borg's version as numbers and text", function()
    local version = borg.version()
    assert.are.equal(1, version.major)
    assert.are.equal(2, version.minor)
    assert.are.equal("integer", math.type(version.patch))
    assert.truthy(version.string:find("^1%.2%.%d+"))
  end)
end)
