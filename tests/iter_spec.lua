-- Iterators over the records of borg calls (borg.iter), against the
-- real borg on real files in temporary directories.

local borg = require "borg"
local core = require "borg.core"
local helpers = require "helpers"

-- Return true while a process with this pid exists.
local function alive(pid)
  local _, status = helpers.shell("kill -0 " .. pid .. " 2>/dev/null")
  return status == 0
end

-- Return the pids of processes in the process group pgid.
local function group_members(pgid)
  local pids = {}
  local list = helpers.shell("ps -e -o pid=,pgid= 2>/dev/null")
  for pid, group in list:gmatch("(%d+)%s+(%d+)") do
    if tonumber(group) == pgid then
      pids[#pids + 1] = tonumber(pid)
    end
  end
  return pids
end

describe("borg.iter", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    api.create { repo .. "::a", src }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Create archive "many" of 30000 items: about 6.5 MB of JSON lines,
  -- more than the pipe and the host's read queue hold, so borg is still
  -- writing when a loop breaks early.
  local function create_many()
    local paths = string.rep(src .. "/a.txt\n", 30000)
    api.create({ repo .. "::many", paths_from_stdin = true }, { stdin = paths })
  end

  it("list yields the items the plain call returns", function()
    local seen = {}
    for item in api.iter.list { repo .. "::a" } do
      assert.are.equal("table", type(item))
      seen[#seen + 1] = item.path
    end
    local whole = api.list { repo .. "::a" }
    assert.is_true(#seen >= 5)
    assert.are.equal(#whole, #seen)
    for i, item in ipairs(whole) do
      assert.are.equal(item.path, seen[i])
    end
  end)

  it("borg.iter uses the default instance", function()
    local borg = require "borg"
    local n = 0
    for item in borg.iter.list({ repo .. "::a" }, { env = helpers.clean_env(dir) }) do
      n = n + 1
      assert.is_string(item.path)
    end
    assert.are.equal(#api.list { repo .. "::a" }, n)
  end)

  it("break stops borg and reaps it", function()
    create_many()
    local next_item, state, control, closing = api.iter.list { repo .. "::many" }
    local pid = closing.pid
    -- The prompt shows it by its text, not by the call's fields.
    assert.are.equal("<borg.iteration: borg list, pid " .. pid .. ">",
      require("borg.repl").show(closing))
    local count = 0
    for _ in next_item, state, control, closing do
      count = count + 1
      if count == 10 then
        assert.is_true(alive(pid), "borg ended before the break")
        break
      end
    end
    assert.are.equal(10, count)
    assert.is_false(alive(pid))
    assert.are.same({}, group_members(pid))
    assert.are.equal(0, core.live())
    -- borg released the lock: a call that needs it runs at once
    local _, run = api.delete({ repo .. "::many" }, { timeout = 60 })
    assert.are.equal(0, run.rc)
  end)

  it("break near the end leaves no stale lock", function()
    -- A short listing: borg has written every line and may be releasing
    -- its lock when the loop breaks, and a signal then would leave a
    -- stale entry that the next call removes with a warning.
    local tiny = dir .. "/tiny"
    os.execute("mkdir -p " .. helpers.quote(tiny))
    helpers.write(tiny .. "/only", "x\n")
    api.create { repo .. "::tiny", tiny }
    for _ = 1, 8 do
      for _ in api.iter.list { repo .. "::tiny" } do
        break
      end
      local _, run = api.list { repo, last = 1 }
      assert.are.same({}, run.warnings)
    end
  end)

  it("an error in the loop stops borg and reaps it", function()
    create_many()
    local pid
    local ok, err = pcall(function()
      local next_item, state, control, closing = api.iter.list { repo .. "::many" }
      pid = closing.pid
      for item in next_item, state, control, closing do
        error("stop at " .. item.path, 0)
      end
    end)
    assert.is_false(ok)
    assert.are.equal("stop at " .. src:sub(2) .. "/a.txt", err)
    assert.is_false(alive(pid))
    assert.are.equal(0, core.live())
  end)

  it("create yields file records and keeps the result", function()
    local next_item, state, control, closing = api.iter.create {
      repo .. "::b", src, json = true }
    local status = {}
    for record in next_item, state, control, closing do
      status[record.path] = record.status
    end
    assert.are.equal("d", status[src])
    assert.are.equal("d", status[src .. "/sub"])
    -- a file is "A" (added) or "U" (unchanged) depending on borg's files
    -- cache, which skips files changed in the last second
    for _, name in ipairs { "/a.txt", "/b.txt", "/sub/c.txt" } do
      assert.matches("^[AU]$", status[src .. name])
    end
    assert.are.equal(0, closing.run.rc)
    assert.are.equal("b", closing.result.stats.archive.name)
    assert.are.equal(3, closing.result.stats.archive.stats.nfiles)
  end)

  it("diff yields the changes", function()
    helpers.write(src .. "/d.txt", "delta\n")
    os.remove(src .. "/sub/c.txt")
    api.create { repo .. "::b", src }
    local changes = {}
    for change in api.iter.diff { repo .. "::a", "b" } do
      changes[change.path] = change.changes[1].type
    end
    assert.are.equal("added", changes[src:sub(2) .. "/d.txt"])
    assert.are.equal("removed", changes[src:sub(2) .. "/sub/c.txt"])
  end)

  it("extract yields the extracted paths", function()
    local paths = {}
    for record in api.iter.extract { repo .. "::a", dry_run = true } do
      paths[#paths + 1] = record.path
    end
    table.sort(paths)
    local rel = src:sub(2)
    assert.are.same({ rel, rel .. "/a.txt", rel .. "/b.txt", rel .. "/sub",
      rel .. "/sub/c.txt" }, paths)
  end)

  it("import_tar yields file records", function()
    local tar = dir .. "/a.tar"
    api.export_tar { repo .. "::a", tar }
    local source = assert(io.open(tar, "rb"))
    local status = {}
    for record in api.iter.import_tar({ repo .. "::b", "-" }, { stdin = source }) do
      status[record.path] = record.status
    end
    source:close()
    local rel = src:sub(2)
    assert.are.equal("d", status[rel])
    assert.are.equal("A", status[rel .. "/a.txt"])
    assert.are.equal("A", status[rel .. "/sub/c.txt"])
  end)

  it("prune yields what it keeps and prunes", function()
    api.create { repo .. "::b", src }
    local actions = {}
    for record in api.iter.prune { repo, keep_last = 1, dry_run = true } do
      actions[#actions + 1] = record.action .. " " .. record.archive
    end
    assert.are.same({ "keep b", "would_prune a" }, actions)
  end)

  it("a loop left unfinished in borg.parallel frees the repository", function()
    create_many()
    local pid
    local results = borg.parallel {
      function()
        -- The iterator function is called by hand and never runs to its
        -- end, so no generic for closes the iteration.
        local next_item, state, _, closing = api.iter.list { repo .. "::many" }
        pid = closing.pid
        return next_item(state).path
      end,
    }
    assert.is_true(results[1].ok, tostring(results[1].error))
    assert.is_false(alive(pid), "borg of the unfinished loop still runs")
    assert.are.equal(0, core.live())
    local again = borg.parallel {
      function()
        return #api.list { repo .. "::a" }
      end,
    }
    assert.is_true(again[1].ok, tostring(again[1].error))
    assert.is_true(again[1][1] >= 5)
  end)

  it("raises borg's error object from the loop", function()
    local ok, err = pcall(function()
      for _ in api.iter.list { repo .. "::missing" } do
      end
    end)
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("list", err.command)
    assert.are.equal(2, err.rc)
    assert.are.equal(0, core.live())
  end)
end)

describe("borg.iter misuse", function()
  local dir, api

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("list of a repository is a usage error", function()
    local ok, err = pcall(api.iter.list, { dir .. "/repo" })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("needs an archive, not a repository", err.message, 1, true)
  end)

  it("an unknown iterator is a usage error", function()
    local ok, err = pcall(function()
      return api.iter.lsit
    end)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("did you mean 'list'", err.message, 1, true)
  end)
end)
