-- borg.parallel: functions side by side on one event loop, against the
-- real borg.

local borg = require "borg"
local core = require "borg.core"
local helpers = require "helpers"

local archive_names = helpers.archive_names

-- Return a function for borg.parallel that runs create with args and
-- stores, under its key in spans, when its borg process started and
-- ended (from the run's duration), so that specs can compare the runs.
local function timed_create(api, spans, args, run)
  return function(key)
    local result, info = api.create(args, run)
    local ended = core.now()
    spans[key] = { start = ended - info.duration, stop = ended }
    return result, info
  end
end

-- Return true when the two spans share some time.
local function overlap(a, b)
  return a.start < b.stop and b.start < a.stop
end

describe("borg.parallel", function()
  local dir, api, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    src = helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("backs up two repositories at the same time", function()
    local r1, r2 = dir .. "/r1", dir .. "/r2"
    api.init { r1, encryption = "none" }
    api.init { r2, encryption = "none" }
    local spans = {}
    local results, failed = borg.parallel {
      timed_create(api, spans, { r1 .. "::one", src, json = true }),
      timed_create(api, spans, { r2 .. "::two", src, json = true }),
    }
    assert.are.equal(0, failed)
    assert.is_true(results[1].ok)
    assert.is_true(results[2].ok)
    assert.are.equal("one", results[1][1].archive.name)
    assert.are.equal("two", results[2][1].archive.name)
    assert.are.equal(0, results[2][2].rc)
    assert.is_true(overlap(spans[1], spans[2]), "the two borg processes did not overlap")
    assert.are.same({ "one" }, archive_names(api, r1))
    assert.are.same({ "two" }, archive_names(api, r2))
  end)

  it("runs calls on one repository one after the other", function()
    local repo = dir .. "/repo"
    -- borg compares the path as written with the one it saw before, and
    -- asks before it uses a repository that seems to have moved.
    api = helpers.instance(dir, { env = { BORG_RELOCATED_REPO_ACCESS_IS_OK = "yes" } })
    api.init { repo, encryption = "none" }
    os.execute("ln -s repo " .. helpers.quote(dir .. "/link"))
    local spans = {}
    -- One repository written four ways: absolute, with a trailing slash,
    -- relative to the call's cwd, and through a symbolic link.
    local results, failed = borg.parallel {
      timed_create(api, spans, { repo .. "::a", src }),
      timed_create(api, spans, { repo .. "/::b", src }),
      timed_create(api, spans, { "./repo::c", src }, { cwd = dir }),
      timed_create(api, spans, { dir .. "/link::d", src }),
    }
    assert.are.equal(0, failed, results[1].error or results[2].error
      or results[3].error or results[4].error)
    for i = 1, 4 do
      for j = i + 1, 4 do
        assert.is_false(overlap(spans[i], spans[j]),
          string.format("calls %d and %d ran at the same time", i, j))
      end
    end
    assert.are.same({ "a", "b", "c", "d" }, archive_names(api, repo))
  end)

  it("runs an iteration and a call on one repository in turn", function()
    local repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
    api.create { repo .. "::first", src }
    local spans, count = {}, 0
    local results, failed = borg.parallel {
      function()
        local start = core.now()
        for _ in api.iter.list { repo .. "::first" } do
          count = count + 1
        end
        spans[1] = { start = start, stop = core.now() }
      end,
      timed_create(api, spans, { repo .. "::second", src }),
    }
    assert.are.equal(0, failed, tostring(results[1].error or results[2].error))
    assert.is_true(count > 0)
    assert.is_false(overlap(spans[1], spans[2]), "the iteration and the create overlapped")
  end)

  it("releases the repository when a loop breaks early", function()
    local repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
    api.create { repo .. "::first", src }
    local results, failed = borg.parallel {
      function()
        for item in api.iter.list { repo .. "::first" } do
          return item.path
        end
      end,
      function() return api.create { repo .. "::second", src } end,
    }
    assert.are.equal(0, failed, tostring(results[1].error or results[2].error))
    assert.is_string(results[1][1])
    assert.are.same({ "first", "second" }, archive_names(api, repo))
  end)

  it("returns the error of a failing function and runs the others", function()
    local r1, r2 = dir .. "/r1", dir .. "/r2"
    api.init { r1, encryption = "none" }
    api.init { r2, encryption = "none" }
    local results, failed = borg.parallel {
      function() return api.create { r1 .. "::one", src } end,
      function() return api.list { dir .. "/missing" } end,
      function() return api.create { r2 .. "::two", src } end,
    }
    assert.are.equal(1, failed)
    assert.is_true(results[1].ok)
    assert.is_false(results[2].ok)
    assert.is_true(results[3].ok)
    assert.is_true(borg.is_error(results[2].error))
    assert.are.equal("borg", results[2].error.kind)
    assert.are.equal("Repository.DoesNotExist", results[2].error.msgid)
    assert.are.same({ "one" }, archive_names(api, r1))
    assert.are.same({ "two" }, archive_names(api, r2))
  end)

  it("releases the repository of a call whose callback raised", function()
    local repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
    local results = borg.parallel {
      function()
        return api.create({ repo .. "::broken", src, list = true },
          { on_file = function() error("stop here") end })
      end,
      function() return api.create { repo .. "::good", src } end,
    }
    assert.is_false(results[1].ok)
    assert.matches("stop here", tostring(results[1].error))
    assert.is_true(results[2].ok, tostring(results[2].error))
    assert.are.same({ "good" }, archive_names(api, repo))
  end)

  it("starts at most limit functions at once", function()
    local running, most = 0, 0
    local functions = {}
    for i = 1, 4 do
      local repo = dir .. "/r" .. i
      functions[i] = function()
        running = running + 1
        most = math.max(most, running)
        api.init { repo, encryption = "none" }
        running = running - 1
        return i
      end
    end
    local results, failed = borg.parallel(functions, { limit = 2 })
    assert.are.equal(0, failed)
    assert.are.equal(2, most)
    for i = 1, 4 do
      assert.are.equal(i, results[i][1])
    end
  end)

  it("runs all functions at once without a limit", function()
    local running, most = 0, 0
    local functions = {}
    for i = 1, 3 do
      functions[i] = function()
        running = running + 1
        most = math.max(most, running)
        api.init { dir .. "/r" .. i, encryption = "none" }
        running = running - 1
      end
    end
    borg.parallel(functions)
    assert.are.equal(3, most)
  end)

  it("keys the results like the functions and passes each its key", function()
    local results, failed = borg.parallel {
      alpha = function(key) return key, nil, "x" end,
      [1] = function(key) return key * 10 end,
    }
    assert.are.equal(0, failed)
    assert.are.equal("alpha", results.alpha[1])
    assert.are.equal(3, results.alpha.n)
    assert.is_nil(results.alpha[2])
    assert.are.equal("x", results.alpha[3])
    assert.are.equal(10, results[1][1])
  end)

  it("catches a plain Lua error as the function's error", function()
    local results, failed = borg.parallel {
      function() error("plain failure") end,
      function() error({ code = 7 }) end,
      function() return "fine" end,
    }
    assert.are.equal(2, failed)
    assert.matches("plain failure", results[1].error)
    assert.are.equal(7, results[2].error.code)
    assert.are.equal("fine", results[3][1])
  end)

  it("runs a borg.parallel inside a function", function()
    local results = borg.parallel {
      function()
        local inner = borg.parallel {
          function() return api.init { dir .. "/a", encryption = "none" } end,
          function() return api.init { dir .. "/b", encryption = "none" } end,
        }
        return inner[1].ok and inner[2].ok
      end,
      function() return api.init { dir .. "/c", encryption = "none" } end,
    }
    assert.is_true(results[1][1])
    assert.is_true(results[2].ok)
    for _, name in ipairs { "a", "b", "c" } do
      assert.is_not_nil(helpers.read(dir .. "/" .. name .. "/config"))
    end
  end)

  it("lets a call inside a coroutine of the function's own block", function()
    local results = borg.parallel {
      function()
        local co = coroutine.wrap(function()
          api.init { dir .. "/own", encryption = "none" }
          coroutine.yield("between")
          return "after"
        end)
        return co(), co()
      end,
    }
    assert.is_true(results[1].ok, tostring(results[1].error))
    assert.are.equal("between", results[1][1])
    assert.are.equal("after", results[1][2])
    assert.is_not_nil(helpers.read(dir .. "/own/config"))
  end)

  it("works on instances with both call forms", function()
    local one = api:parallel { function() return 1 end }
    local two = api.parallel { function() return 2 end }
    assert.are.equal(1, one[1][1])
    assert.are.equal(2, two[1][1])
  end)

  it("reports functions that wait for each other's repository", function()
    local r1, r2 = dir .. "/r1", dir .. "/r2"
    api.init { r1, encryption = "none" }
    api.init { r2, encryption = "none" }
    -- Each callback calls borg on the repository that the other function
    -- is writing.
    local function crossing(mine, other)
      return function()
        return api.create({ mine .. "::x", src, list = true },
          { on_file = function() api.list { other } end })
      end
    end
    local results, failed = borg.parallel {
      crossing(r1, r2), crossing(r2, r1),
    }
    assert.are.equal(2, failed)
    assert.are.equal("usage", results[1].error.kind)
    assert.matches("wait for each other", results[1].error.message)
    assert.are.equal("usage", results[2].error.kind)
  end)

  it("stops every function's borg on SIGTERM", function()
    local hang = helpers.top .. "/tests/bin/hang-borg"
    helpers.write(dir .. "/policy.lua", string.format([[
      local function hanging(n)
        local api = borg.new { borg = %q, env = { HANG_BORG_PID = %q .. n } }
        return function() return api.check { "/r" .. n } end
      end
      local results, failed = borg.parallel { hanging(1), hanging(2) }
      print(failed, results[1].error.kind, results[2].error.kind)
    ]], hang, dir .. "/pid"))
    local q = helpers.quote
    local output = helpers.shell("cd " .. q(dir) .. " && (" .. q(helpers.borglua)
      .. " policy.lua 2>/dev/null & host=$!; for i in $(seq 100); do [ -s pid1 ] &&"
      .. " [ -s pid2 ] && break; sleep 0.1; done; kill -TERM $host; wait $host;"
      .. " echo \"status $?\")")
    assert.are.equal("2\tsignal\tsignal\nstatus 143\n", output)
    for n = 1, 2 do
      local pid = helpers.read(dir .. "/pid" .. n):match("%d+")
      local _, alive = helpers.shell("kill -0 " .. pid .. " 2>/dev/null")
      assert.are_not.equal(0, alive, "borg " .. n .. " is still running")
    end
  end)

  it("reports a wrong call before running anything", function()
    local ran = false
    local cases = {
      { "expected a table of functions", "create" },
      { "entry 2 must be a function", { function() ran = true end, "no" } },
      { "option 'limit' must be a positive integer",
        { function() ran = true end }, { limit = 0 } },
      { "did you mean 'limit'", { function() ran = true end }, { limits = 2 } },
      { "options%) must be a table", { function() ran = true end }, 3 },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(borg.parallel, case[2], case[3])
      assert.is_false(ok)
      assert.are.equal("usage", err.kind)
      assert.matches(case[1], err.message)
    end
    assert.is_false(ran)
  end)
end)
