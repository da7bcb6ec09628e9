-- The same calls on borg 1.2 and borg 2: each spec here runs once per
-- program, on real repositories in temporary directories, and the results
-- follow one schema on both.

local borg = require "borg"
local helpers = require "helpers"

local PROGRAMS = { "borg", "borg2" }

local ISO_TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*[+-]%d%d:%d%d$"

-- Add to out the "path: type" lines that describe value: its keys, their
-- Lua types, and the shape of the first element of an array.
local function describe_shape(value, prefix, out)
  if type(value) ~= "table" then
    out[#out + 1] = prefix .. ": " .. (math.type(value) or type(value))
    return out
  end
  if value[1] ~= nil then
    return describe_shape(value[1], prefix .. "[]", out)
  end
  for key, field in pairs(value) do
    describe_shape(field, prefix .. "." .. key, out)
  end
  return out
end

-- Return the shape of value as sorted lines of text.
local function shape(value)
  local lines = describe_shape(value, "", {})
  table.sort(lines)
  return table.concat(lines, "\n")
end

-- Make an instance of program in dir, a repository with one archive of
-- a small tree (with a symbolic link and a name that is not UTF-8), and
-- return the instance, the repository and the results of create and the
-- list of the archive.
local function setup(program, dir)
  -- log_level "error" keeps init's advice about keys out of the test output.
  local api = helpers.instance(dir, { borg = program, log_level = "error",
                                      env = { BORG_PASSPHRASE = "secret" } })
  local src = helpers.source_tree(dir)
  os.execute("ln -s a.txt " .. helpers.quote(src .. "/link") .. " && touch "
    .. helpers.quote(src .. "/caf\233"))
  local repo = dir .. "/repo"
  api.init { repo }
  local created = api.create({ repo .. "::first", "src", json = true }, { cwd = dir })
  return api, repo, created
end

for _, program in ipairs(PROGRAMS) do
  -- These specs only read the repository, so they share one.
  describe("on " .. program, function()
    local dir, api, repo, created

    lazy_setup(function()
      dir = helpers.tmpdir()
      api, repo, created = setup(program, dir)
    end)

    lazy_teardown(function()
      helpers.rmdir(dir)
    end)

    it("create returns the stats in the schema", function()
      local archive = created.archive
      assert.are.equal("first", archive.name)
      assert.are.equal(4, archive.stats.nfiles)
      assert.are.equal("integer", math.type(archive.stats.original_size))
      assert.are.equal("integer", math.type(archive.stats.deduplicated_size))
      assert.truthy(archive.start:find(ISO_TIME), archive.start)
      assert.truthy(archive["end"]:find(ISO_TIME), archive["end"])
      assert.are.equal("create", archive.command_line[2])
      assert.are.equal("src", archive.command_line[#archive.command_line])
      assert.is_nil(archive.stats.compressed_size)
      assert.are.equal(repo, created.repository.location)
      assert.truthy(created.repository.last_modified:find(ISO_TIME))
    end)

    it("list of an archive gives items with target and times", function()
      local items = api.list { repo .. "::first" }
      local by_path = {}
      for _, item in ipairs(items) do
        by_path[item.path] = item
        assert.truthy(item.mtime:find(ISO_TIME), item.mtime)
        assert.is_nil(item.source)
        assert.is_nil(item.hlid)
      end
      assert.are.equal("a.txt", by_path["src/link"].target)
      assert.are.equal("l", by_path["src/link"].type)
      assert.are.equal("", by_path["src/a.txt"].target)
      assert.are.equal(6, by_path["src/a.txt"].size)
      -- borg 1.2 writes the byte 0xe9 as "?"; borg 2 gives it in path_b64.
      local name = program == "borg" and "src/caf?" or "src/caf\233"
      assert.is_not_nil(by_path[name], "no item " .. name)
    end)

    it("iter.list gives the items of list", function()
      local listed, iterated = {}, {}
      for _, item in ipairs(api.list { repo .. "::first" }) do
        listed[#listed + 1] = item.path .. " -> " .. item.target .. " " .. item.mtime
      end
      for item in api.iter.list { repo .. "::first" } do
        iterated[#iterated + 1] = item.path .. " -> " .. item.target .. " " .. item.mtime
      end
      assert.are.equal(7, #iterated)
      assert.are.same(listed, iterated)
    end)

    it("info of an archive gives its metadata", function()
      local info = api.info { repo .. "::first" }
      local archive = info.archives[1]
      assert.are.equal(1, #info.archives)
      assert.are.equal("first", archive.name)
      assert.are.equal("string", type(archive.hostname))
      assert.are.equal("table", type(archive.command_line))
      assert.are.equal("buzhash", archive.chunker_params[1])
      assert.are.equal(4, archive.stats.nfiles)
    end)

    it("info of the repository gives no archives", function()
      local info, run = api.info { repo }
      assert.is_nil(info.archives)
      assert.are.equal(repo, info.repository.location)
      assert.are.equal("integer", math.type(info.cache.stats.total_chunks))
      assert.are.equal(run.raw.repository.id, info.repository.id)
    end)

    it("a missing repository raises Repository.DoesNotExist", function()
      local ok, err = pcall(api.list, { dir .. "/missing" })
      assert.is_false(ok)
      assert.are.equal("borg", err.kind)
      assert.are.equal("Repository.DoesNotExist", err.msgid)
    end)

    it("a wrong passphrase raises PassphraseWrong", function()
      local ok, err = pcall(api.list, { repo }, { env = { BORG_PASSPHRASE = "wrong" } })
      assert.is_false(ok)
      assert.are.equal("borg", err.kind)
      assert.are.equal("PassphraseWrong", err.msgid)
    end)
  end)
end

for _, program in ipairs(PROGRAMS) do
  -- These specs change the repository, so each has its own.
  describe("changing a repository on " .. program, function()
    local dir, api, repo

    before_each(function()
      dir = helpers.tmpdir()
      api, repo = setup(program, dir)
    end)

    after_each(function()
      helpers.rmdir(dir)
    end)

    it("list of the repository names the archives", function()
      api.create({ repo .. "::second", "src" }, { cwd = dir })
      local listing, run = api.list { repo }
      local names = {}
      for i, archive in ipairs(listing.archives) do
        names[i] = archive.name
        assert.truthy(archive.time:find(ISO_TIME), archive.time)
        assert.is_nil(archive.barchive)
      end
      assert.are.same({ "first", "second" }, names)
      assert.are.equal(2, #run.raw.archives)
    end)

    it("prune, delete, rename, compact and check work alike", function()
      -- Archives made within one second count as one for keep_last.
      api.create({ repo .. "::second", "src", timestamp = "2030-01-01T00:00:00" },
        { cwd = dir })
      api.create({ repo .. "::third", "src", timestamp = "2030-01-02T00:00:00" },
        { cwd = dir })
      local pruned = api.prune { repo, keep_last = 2, list = true }
      local actions = {}
      for _, entry in ipairs(pruned) do
        actions[entry.archive] = entry.action
        assert.truthy(entry.time:find(ISO_TIME), entry.time)
      end
      assert.are.same({ first = "prune", second = "keep", third = "keep" }, actions)
      api.rename { repo .. "::second", "renamed" }
      api.delete { repo .. "::third" }
      api.compact { repo }
      api.check { repo }
      local names = {}
      for i, archive in ipairs(api.list { repo }.archives) do
        names[i] = archive.name
      end
      assert.are.same({ "renamed" }, names)
    end)

    it("extract and diff name archives the same way", function()
      helpers.write(dir .. "/src/a.txt", "changed\n")
      api.create({ repo .. "::second", "src" }, { cwd = dir })
      local changes = api.diff { repo .. "::first", "second" }
      -- diff gives borg's text until it has its own result rules.
      local text = changes
      if type(changes) == "table" then
        local paths = {}
        for _, change in ipairs(changes) do
          paths[#paths + 1] = change.path
        end
        text = table.concat(paths, " ")
      end
      assert.truthy(text:find("src/a.txt", 1, true), text)
      os.execute("mkdir " .. helpers.quote(dir .. "/out"))
      api.extract({ repo .. "::first", "src/a.txt" }, { cwd = dir .. "/out" })
      assert.are.equal("alpha\n", helpers.read(dir .. "/out/src/a.txt"))
    end)

    it("an existing archive name raises Archive.AlreadyExists", function()
      local ok, err = pcall(api.create, { repo .. "::first", "src" }, { cwd = dir })
      assert.is_false(ok)
      assert.are.equal("borg", err.kind)
      assert.are.equal("Archive.AlreadyExists", err.msgid)
    end)
  end)
end

describe("the result schema", function()
  local dirs = {}

  after_each(function()
    for _, dir in ipairs(dirs) do
      helpers.rmdir(dir)
    end
    dirs = {}
  end)

  it("has the same fields and types on both versions", function()
    local shapes = {}
    for i, program in ipairs(PROGRAMS) do
      dirs[i] = helpers.tmpdir()
      local api, repo, created = setup(program, dirs[i])
      shapes[i] = {
        create = shape(created),
        repository_list = shape(api.list { repo }),
        items = shape(api.list { repo .. "::first" }),
        archive_info = shape(api.info { repo .. "::first" }),
        repository_info = shape(api.info { repo }),
      }
    end
    for name, text in pairs(shapes[1]) do
      assert.are.equal(text, shapes[2][name], name .. " differs")
    end
    assert.truthy(shapes[1].items:find(".path: string", 1, true))
  end)
end)
