-- Many calls in one host: descriptors, children and memory stay flat.
--
-- Most calls run fake-borg, because 1000 starts of the real borg would
-- take minutes; every 50th call runs the real borg, half of them on a
-- repository that does not exist.

local borg = require "borg"
local helpers = require "helpers"

local open_fds = helpers.open_fds

local children = helpers.children

-- Return the host's resident set size in KiB, after a full collection.
local function rss_kib()
  collectgarbage("collect")
  collectgarbage("collect")
  local status = helpers.read("/proc/" .. helpers.pid .. "/status")
  return tonumber(status:match("VmRSS:%s+(%d+) kB"))
end

-- Return a function that makes call number i of the mix and returns
-- the outcome it expects and the one it got: "ok", "warning" or the kind
-- of the error raised.
local function mix(dir, real_repo)
  local record = '{"type": "log_message", "levelname": "ERROR", "name": "borg.archiver",'
    .. ' "message": "Repository /r does not exist.", "msgid": "Repository.DoesNotExist"}'
  local fake = helpers.instance(dir, { borg = helpers.fake_borg })
  local real = helpers.instance(dir, { env = { BORG_PASSPHRASE = "leaks" } })
  local cases = {
    { "ok", function() return fake.check { "/r" } end },
    { "warning", function()
      return fake.prune({ "/r", keep_last = 1 }, { env = { FAKE_BORG_EXIT = "1" } })
    end },
    { "borg", function()
      return fake.check({ "/r" }, { env = { FAKE_BORG_EXIT = "2", FAKE_BORG_STDERR = record } })
    end },
    { "signal", function()
      return fake.check({ "/r" }, { env = { FAKE_BORG_SIGNAL = "KILL" } })
    end },
    { "decode", function() return fake.list { "/r" } end },
    { "ok", function()
      return fake.list({ "/r" }, { env = { FAKE_BORG_STDOUT = '{"archives": []}' } })
    end },
    { "usage", function() return fake.check { "/r", no_such_option = true } end },
    { "spawn", function()
      return helpers.instance(dir, { borg = dir .. "/missing" }).check { "/r" }
    end },
  }
  local real_ok = { "ok", function() return real.list { real_repo } end }
  local real_missing = { "borg", function() return real.list { dir .. "/missing-repo" } end }
  return function(i)
    local case = cases[i % #cases + 1]
    if i % 50 == 0 then
      case = real_ok
    elseif i % 50 == 25 then
      case = real_missing
    end
    local ok, result, run = pcall(case[2])
    if not ok then
      -- Plain assert: each luassert call keeps state that would count as
      -- growth of the host.
      assert(borg.is_error(result), tostring(result))
      return case[1], result.kind
    end
    return case[1], run.status
  end
end

describe("a thousand calls in one host", function()
  local dir, repo

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    helpers.instance(dir, { env = { BORG_PASSPHRASE = "leaks" } }).init { repo }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("leave descriptors, children and memory as they were", function()
    local call = mix(dir, repo)
    -- Warm up: the first few hundred calls grow the C heap (libuv's and
    -- the read buffers) to the size that later calls reuse.
    for i = 1, 300 do
      call(i)
    end
    local fds, rss = open_fds(), rss_kib()
    local seen, mismatches = {}, {}
    for i = 1, 1000 do
      local want, got = call(i)
      seen[got] = (seen[got] or 0) + 1
      if want ~= got then
        mismatches[#mismatches + 1] = string.format("call %d: %s, expected %s", i, got, want)
      end
    end
    local fds_after, rss_after = open_fds(), rss_kib()
    print(string.format("\n1000 calls: fds %d -> %d, RSS %d -> %d KiB (%+d KiB)",
      fds, fds_after, rss, rss_after, rss_after - rss))

    assert.are.equal(fds, fds_after)
    assert.are.same({}, children())
    assert.is_true(rss_after - rss < 2048, "RSS grew by " .. (rss_after - rss) .. " KiB")
    -- Each call ended as its case expects, and the mix had every outcome.
    assert.are.same({}, mismatches)
    for _, outcome in ipairs { "ok", "warning", "borg", "signal", "decode", "usage",
                               "spawn" } do
      assert.is_true((seen[outcome] or 0) >= 20, outcome)
    end
  end)
end)

describe("200 calls in 8 parallel functions", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("leave descriptors and children as they were", function()
    local call = mix(dir, dir .. "/missing-repo")
    local fds = open_fds()
    local functions = {}
    for task = 1, 8 do
      functions[task] = function()
        local mismatches = {}
        for n = 1, 25 do
          -- Calls 0 and 25 modulo 50 would run the real borg; the tasks
          -- keep to the fake one.
          local i = (task - 1) * 25 + n
          if i % 25 == 0 then
            i = i + 1
          end
          local want, got = call(i)
          if want ~= got then
            mismatches[#mismatches + 1] = string.format("call %d: %s, expected %s", i,
              got, want)
          end
        end
        return mismatches
      end
    end
    local results, failed = borg.parallel(functions)
    assert.are.equal(0, failed)
    for task = 1, 8 do
      assert.is_true(results[task].ok)
      assert.are.same({}, results[task][1])
    end
    assert.are.equal(fds, open_fds())
    assert.are.same({}, children())
  end)
end)
