-- borg 2's transfer copies the archives of a borg 1.2 repository into a
-- new borg 2 repository, through the same API as every other command.

local borg = require "borg"
local helpers = require "helpers"

-- Return the items of an archive as sorted lines "type mode size mtime
-- path -> target". borg 1.2 writes each byte of a name that is not UTF-8
-- as "?" in its JSON, so such bytes become "?" here on both versions.
local function file_list(items)
  local lines = {}
  for _, item in ipairs(items) do
    local path = item.path:gsub("[\128-\255]", "?")
    lines[#lines + 1] = string.format("%s %s %d %s %s -> %s", item.type, item.mode,
      item.size, item.mtime, path, item.target)
  end
  table.sort(lines)
  return lines
end

describe("transfer", function()
  local dir, old, new

  before_each(function()
    dir = helpers.tmpdir()
    old = helpers.instance(dir, { log_level = "error",
                                  env = { BORG_PASSPHRASE = "secret" } })
    -- borg 2 reads the passphrase once per repository, and transfer opens
    -- two, so it comes from a command rather than from a pipe read once.
    new = helpers.instance(dir, { borg = "borg2", log_level = "error",
                                  env = { BORG_PASSCOMMAND = "echo secret" } })
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("copies 1.2 archives into a borg 2 repository", function()
    local src = helpers.source_tree(dir)
    os.execute("ln -s a.txt " .. helpers.quote(src .. "/link") .. " && touch "
      .. helpers.quote(src .. "/caf\233"))
    local from, to = dir .. "/old", dir .. "/new"
    old.init { from }
    old.create({ from .. "::first", "src" }, { cwd = dir })
    helpers.write(src .. "/d.txt", "delta\n")
    old.create({ from .. "::second", "src" }, { cwd = dir })

    -- borg 2 can only read 1.2 archives in a repository that shares
    -- their key material, which init's other_repo copies.
    new.init { to, other_repo = from }
    local _, run = new.transfer { to, other_repo = from, upgrader = "From12To20" }
    assert.are.equal("ok", run.status)
    assert.are.equal("transfer", run.argv[2])

    local names = {}
    for i, archive in ipairs(new.list { to }.archives) do
      names[i] = archive.name
    end
    assert.are.same({ "first", "second" }, names)
    for _, name in ipairs(names) do
      local before = file_list(old.list { from .. "::" .. name })
      local after = file_list(new.list { to .. "::" .. name })
      assert.are.equal(name == "first" and 7 or 8, #after)
      assert.are.same(before, after)
    end
    local items = new.list { to .. "::first" }
    local exact = false
    for _, item in ipairs(items) do
      exact = exact or item.path == "src/caf\233"
    end
    assert.is_true(exact, "borg 2 gives the exact bytes of the name")
  end)

  it("is a usage error on borg 1.2", function()
    local ok, err = pcall(old.transfer, { dir .. "/new", other_repo = dir .. "/old" })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.truthy(err.message:find("is a borg 2 command", 1, true), err.message)
    assert.is_true(borg.is_error(err))
  end)
end)
