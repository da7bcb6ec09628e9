-- The result of each borg command, against the real borg on real files:
-- one requested output comes back bare, several keyed by name, none as
-- nil.

local helpers = require "helpers"

local q = helpers.quote

-- Return 4096 bytes that contain every byte value, NUL included.
local function binary_content()
  local bytes = {}
  for i = 0, 4095 do
    bytes[#bytes + 1] = string.char((i * 7 + i // 256) % 256)
  end
  return table.concat(bytes)
end

-- Return the sorted paths of records.
local function paths(records)
  local list = {}
  for i, record in ipairs(records) do
    list[i] = record.path
  end
  table.sort(list)
  return list
end

describe("results", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    helpers.write(src .. "/binary", binary_content())
    api.init { repo, encryption = "none" }
    -- Relative paths make the archive's paths predictable.
    api.create({ repo .. "::one", "src" }, { cwd = dir })
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  describe("extract", function()
    it("returns the bytes of stdout = true, NUL bytes included", function()
      local bytes = api.extract { repo .. "::one", "src/binary", stdout = true }
      assert.are.equal(4096, #bytes)
      assert.are.equal(binary_content(), bytes)
    end)

    it("returns the extracted paths with list = true", function()
      local target = dir .. "/target"
      os.execute("mkdir " .. q(target))
      local list = api.extract({ repo .. "::one", "src/sub", list = true }, { cwd = target })
      assert.are.same({ "src/sub", "src/sub/c.txt" }, paths(list))
      assert.are.equal("charlie\n", helpers.read(target .. "/src/sub/c.txt"))
    end)

    it("returns list and bytes keyed when both are requested", function()
      local result = api.extract { repo .. "::one", "src/a.txt", stdout = true, list = true }
      assert.are.equal("alpha\n", result.extract)
      assert.are.same({ "src/a.txt" }, paths(result.list))
    end)

    it("returns nothing without outputs and writes the files", function()
      local target = dir .. "/target"
      os.execute("mkdir " .. q(target))
      local result = api.extract({ repo .. "::one" }, { cwd = target })
      assert.is_nil(result)
      assert.are.equal(binary_content(), helpers.read(target .. "/src/binary"))
    end)
  end)

  describe("export_tar", function()
    it("returns the tar bytes for \"-\"", function()
      local tar = api.export_tar { repo .. "::one", "-" }
      assert.are.equal(0, #tar % 512)
      helpers.write(dir .. "/one.tar", tar)
      local content = helpers.shell("tar -xOf " .. q(dir .. "/one.tar") .. " src/binary")
      assert.are.equal(binary_content(), content)
    end)

    it("returns list and tar keyed when both are requested", function()
      local result = api.export_tar { repo .. "::one", "-", "src/sub", list = true }
      assert.are.same({ "src/sub", "src/sub/c.txt" }, paths(result.list))
      assert.is_true(#result.tar >= 1024)
    end)

    it("returns nothing when it writes a file", function()
      local result = api.export_tar { repo .. "::one", dir .. "/one.tar" }
      assert.is_nil(result)
      local names = helpers.shell("tar -tf " .. q(dir .. "/one.tar") .. " | sort")
      assert.are.equal("src/\nsrc/a.txt\nsrc/b.txt\nsrc/binary\nsrc/sub/\nsrc/sub/c.txt\n",
        names)
    end)
  end)

  describe("import_tar", function()
    it("stores a tar file and returns the stats with json", function()
      api.export_tar { repo .. "::one", dir .. "/one.tar" }
      local stats = api.import_tar { repo .. "::copy", dir .. "/one.tar", json = true }
      assert.are.equal("copy", stats.archive.name)
      assert.is_true(stats.archive.stats.nfiles >= 4)
      assert.are.equal("alpha\n", api.extract { repo .. "::copy", "src/a.txt", stdout = true })
    end)

    it("reads the tar from stdin for \"-\"", function()
      local tar = api.export_tar { repo .. "::one", "-" }
      local result = api.import_tar({ repo .. "::piped", "-" }, { stdin = tar })
      assert.is_nil(result)
      assert.are.equal(binary_content(),
        api.extract { repo .. "::piped", "src/binary", stdout = true })
    end)
  end)

  describe("diff", function()
    it("returns an array of changes", function()
      helpers.write(src .. "/a.txt", "alpha, longer now\n")
      os.remove(src .. "/sub/c.txt")
      helpers.write(src .. "/d.txt", "delta\n")
      api.create({ repo .. "::two", "src" }, { cwd = dir })
      local changes = api.diff { repo .. "::one", "two" }
      local by_path = {}
      for _, change in ipairs(changes) do
        by_path[change.path] = change.changes[1].type
      end
      assert.are.equal("modified", by_path["src/a.txt"])
      assert.are.equal("added", by_path["src/d.txt"])
      assert.are.equal("removed", by_path["src/sub/c.txt"])
    end)

    it("returns an empty array when nothing changed", function()
      api.create({ repo .. "::same", "src" }, { cwd = dir })
      local changes = api.diff { repo .. "::one", "same" }
      assert.are.same({}, changes)
    end)
  end)

  describe("recreate", function()
    it("drops excluded files and returns the file records", function()
      local list = api.recreate { repo .. "::one", exclude = { "src/b.txt" }, list = true }
      local statuses = {}
      for _, record in ipairs(list) do
        statuses[record.path] = record.status
      end
      assert.are.equal("x", statuses["src/b.txt"])
      local items = api.list { repo .. "::one" }
      assert.are.same({ "src", "src/a.txt", "src/binary", "src/sub", "src/sub/c.txt" },
        paths(items))
    end)
  end)

  describe("config", function()
    it("reads values in the order given and sets values between", function()
      local values = api.config { repo, "append_only", { "storage_quota", "2G" },
                                  "storage_quota", { "append_only", 1 }, "append_only" }
      assert.are.same({ "0", "2G", "1" }, values)
    end)

    it("returns the settings with list = true", function()
      local settings = api.config { repo, list = true }
      assert.are.equal("1", settings.repository.version)
      assert.are.equal("0", settings.repository.append_only)
      assert.are.equal(64, #settings.repository.id)
    end)

    it("returns list and changes keyed when both are requested", function()
      local result = api.config { repo, { "additional_free_space", "1M" },
                                  "additional_free_space", list = true }
      assert.are.same({ "1M" }, result.changes)
      assert.are.equal("1M", result.list.repository.additional_free_space)
    end)

    it("returns nothing when it only sets values", function()
      local result, run = api.config { repo, { "append_only", "1" } }
      assert.is_nil(result)
      assert.are.equal("ok", run.status)
      assert.are.same({ "1" }, api.config { repo, "append_only" })
    end)

    it("deletes settings with delete = true", function()
      api.config { repo, { "storage_quota", "1G" } }
      api.config { repo, "storage_quota", delete = true }
      local values, run = api.config { repo, "storage_quota", "append_only" }
      assert.are.same({ false, "0" }, values)
      assert.are.equal("warning", run.status)
    end)
  end)

  describe("keys", function()
    local pass = { env = { BORG_PASSPHRASE = "first" } }
    local keyed

    before_each(function()
      keyed = dir .. "/keyed"
      api.init({ keyed, encryption = "repokey", log_level = "error" }, pass)
    end)

    it("key_export returns the key text for \"-\"", function()
      local key = api.key_export({ keyed, "-" }, pass)
      assert.truthy(key:find("^BORG_KEY %x+\n"), key)
      assert.are.equal(key, api.key_export({ keyed }, pass))
    end)

    it("key_export writes a file and returns nothing", function()
      local result = api.key_export({ keyed, dir .. "/key.txt" }, pass)
      assert.is_nil(result)
      assert.are.equal(api.key_export({ keyed, "-" }, pass), helpers.read(dir .. "/key.txt"))
    end)

    it("key_import puts back an exported key, from a file or stdin", function()
      local key = api.key_export({ keyed, "-" }, pass)
      helpers.write(dir .. "/key.txt", key)
      assert.is_nil(api.key_import({ keyed, dir .. "/key.txt" }, pass))
      assert.is_nil(api.key_import({ keyed, "-" }, { stdin = key,
                                                     env = pass.env }))
      assert.are.equal("repokey", api.info({ keyed }, pass).encryption.mode)
    end)

    it("key_change_passphrase makes the old passphrase wrong", function()
      local result = api.key_change_passphrase({ keyed },
        { env = { BORG_PASSPHRASE = "first", BORG_NEW_PASSPHRASE = "second" } })
      assert.is_nil(result)
      local ok, err = pcall(api.info, { keyed }, pass)
      assert.is_false(ok)
      assert.are.equal("PassphraseWrong", err.msgid)
      local info = api.info({ keyed }, { env = { BORG_PASSPHRASE = "second" } })
      assert.are.equal("repokey", info.encryption.mode)
    end)

    it("upgrade turns the manifest check off and on again", function()
      local id = api.info({ keyed }, pass).repository.id
      local flag = dir .. "/base/.config/borg/security/" .. id .. "/tam_required"
      assert.is_not_nil(helpers.read(flag))
      assert.is_nil(api.upgrade({ keyed, disable_tam = true, log_level = "error" }, pass))
      assert.is_nil(helpers.read(flag))
      assert.is_nil(api.upgrade({ keyed, tam = true }, pass))
      assert.is_not_nil(helpers.read(flag))
    end)

    it("upgrade names the failure borg prints on stdout", function()
      local ok, err = pcall(api.upgrade, { repo, tam = true })
      assert.is_false(ok)
      assert.are.equal("borg", err.kind)
      assert.are.equal(2, err.rc)
      assert.are.equal("this repository is not encrypted, cannot enable TAM", err.message)
    end)

    it("key_migrate_to_repokey converts an old passphrase repository", function()
      local old = dir .. "/old"
      local _, status = helpers.shell("BORG_BASE_DIR=" .. q(dir .. "/base")
        .. " BORG_NEW_PASSPHRASE=first /usr/bin/python3 "
        .. q(helpers.top .. "/tests/fixtures/passphrase-repo.py") .. " " .. q(old))
      assert.are.equal(0, status)
      local ok = pcall(api.info, { old }, pass)
      assert.is_false(ok)
      assert.is_nil(api.key_migrate_to_repokey({ old }, pass))
      assert.are.equal("repokey", api.info({ old }, pass).encryption.mode)
    end)
  end)

  describe("benchmark_crud", function()
    it("returns the measured rows as numbers", function()
      local work = dir .. "/bench"
      os.execute("mkdir " .. q(work))
      -- This borg variable shrinks the data set to two files of one byte.
      local rows = api.benchmark_crud({ repo, work },
        { env = { _BORG_BENCHMARK_CRUD_TEST = "YES" } })
      assert.are.equal(8, #rows)
      local operations = {}
      for i, row in ipairs(rows) do
        operations[i] = row.operation
        assert.are.equal(1, row.count)
        assert.are.equal(1, row.size)
        assert.are.equal("number", type(row.speed))
        assert.is_true(row.speed >= 0)
        assert.is_true(row.seconds > 0)
      end
      assert.are.same({ "create", "extract", "update", "delete",
                        "create", "extract", "update", "delete" }, operations)
      assert.are.equal("Z-TEST", rows[1].test)
      assert.are.equal("all-zero", rows[1].content)
      assert.are.equal("random", rows[5].content)
    end)
  end)

  describe("locks", function()
    it("with_lock holds the lock while its program runs", function()
      local script = dir .. "/second.lua"
      helpers.write(script, string.format([[
        local ok, err = pcall(borg.list, { %q, lock_wait = 1 })
        local out = io.open(%q, "w")
        out:write(ok and "ran" or tostring(err.msgid))
        out:close()
      ]], repo, dir .. "/msgid"))
      local result, run = api.with_lock { repo, { helpers.borglua, script } }
      assert.is_nil(result)
      assert.are.equal(0, run.rc)
      assert.are.equal("LockTimeout", helpers.read(dir .. "/msgid"))
      -- After with_lock, the lock is free again.
      assert.are.equal(1, #api.list { repo }.archives)
    end)

    it("with_lock passes the program's output to the host", function()
      helpers.write(dir .. "/locked.lua", string.format([[
        local api = borg.new{ env = { BORG_BASE_DIR = %q, BORG_SELFTEST = "disabled",
                                      BORG_REPO = false, BORG_PASSPHRASE = false } }
        api.with_lock{ %q, { "sh", "-c", "echo to-stdout; echo to-stderr >&2" } }
      ]], dir .. "/base", repo))
      local _, status = helpers.shell(q(helpers.borglua) .. " " .. q(dir .. "/locked.lua")
        .. " >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err"))
      assert.are.equal(0, status)
      assert.are.equal("to-stdout\n", helpers.read(dir .. "/out"))
      assert.are.equal("to-stderr\n", helpers.read(dir .. "/err"))
    end)

    it("with_lock takes the program as positionals too", function()
      local _, run = api.with_lock { repo, "sh", "-c", "exit 1" }
      assert.are.equal(1, run.rc)
      assert.are.equal("warning", run.status)
    end)

    it("break_lock removes a lock that a killed borg left", function()
      -- A lock of another host is never taken for stale, so it stays.
      local ok, err = pcall(api.with_lock, { repo, "sh", "-c", "kill -KILL $PPID" },
        { env = { BORG_HOST_ID = "elsewhere@1" } })
      assert.is_false(ok)
      assert.are.equal("signal", err.kind)
      local locked, lock_err = pcall(api.list, { repo, lock_wait = 1 })
      assert.is_false(locked)
      assert.are.equal("LockTimeout", lock_err.msgid)
      assert.is_nil(api.break_lock { repo })
      assert.are.equal(1, #api.list { repo, lock_wait = 1 }.archives)
    end)
  end)
end)
