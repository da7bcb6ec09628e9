-- Children that misbehave: crashes, hangs, floods, broken JSON, early
-- closes and programs that cannot start. Each call must give one clean
-- error object (or the right result) and leave no zombie, no open
-- descriptor and no stray process behind.

local borg = require "borg"
local helpers = require "helpers"

local FAULT_BORG = helpers.top .. "/tests/bin/fault-borg"
local DOCUMENT = { name = "a1", id = "00ff" }

local open_fds = helpers.open_fds

local children = helpers.children

-- Return true when process pid has ended or ends within 5 s.
local function ended(pid)
  return helpers.ends_within(pid, 5)
end

-- Return the error object that fn(...) raises; fail when it returns.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "the call returned instead of raising")
  assert.is_true(borg.is_error(err), tostring(err))
  return err
end

describe("a faulty borg", function()
  local dir, fds_before

  -- The first spawn of a host opens descriptors that every later spawn
  -- reuses (libuv keeps one on /dev/null), so one call runs before the
  -- counting starts.
  setup(function()
    borg.new({ borg = helpers.fake_borg }).check { "/r" }
  end)

  before_each(function()
    dir = helpers.tmpdir()
    fds_before = open_fds()
  end)

  -- Every case ends with the host as it was: the same descriptors and no
  -- child left, running or zombie.
  after_each(function()
    assert.are.equal(fds_before, open_fds())
    assert.are.same({}, children())
    helpers.rmdir(dir)
  end)

  -- Return an instance of fault-borg in the given mode.
  local function faulty(mode, extra)
    local vars = { FAULT_BORG_MODE = mode, FAULT_BORG_PIDS = dir .. "/pids" }
    for name, value in pairs(extra or {}) do
      vars[name] = value
    end
    return helpers.instance(dir, { borg = FAULT_BORG, env = vars })
  end

  local function recorded_pids()
    local pids = {}
    for pid in (helpers.read(dir .. "/pids") or ""):gmatch("%d+") do
      pids[#pids + 1] = pid
    end
    return pids
  end

  it("killed by a signal", function()
    local api = helpers.instance(dir, { borg = helpers.fake_borg,
                                        env = { FAKE_BORG_SIGNAL = "SEGV" } })
    local err = raised(api.check, { "/repo" })
    assert.are.equal("signal", err.kind)
    assert.are.equal(11, err.signal)
    assert.is_nil(err.rc)
    assert.are.equal("borg was killed by SIGSEGV", err.message)
    assert.are.equal("check", err.command)
  end)

  it("hang ends at the timeout", function()
    local started = os.time()
    local err = raised(faulty("hang").check, { "/repo" }, { timeout = 1 })
    assert.are.equal("timeout", err.kind)
    assert.are.equal(15, err.signal)
    assert.are.equal("timed out after 1 s; borg was stopped", err.message)
    assert.is_true(os.time() - started < 10)
    local pids = recorded_pids()
    assert.are.equal(2, #pids)
    -- The grandchild was in the group that got SIGTERM.
    assert.is_true(ended(pids[2]), "the grandchild still runs")
  end)

  it("hang that ignores SIGTERM gets SIGKILL", function()
    local err = raised(faulty("hang", { FAULT_BORG_TRAP = "1" }).check, { "/repo" },
      { timeout = 1 })
    assert.are.equal("timeout", err.kind)
    assert.are.equal(9, err.signal)
    local pids = recorded_pids()
    assert.are.equal(2, #pids)
    assert.is_true(ended(pids[2]), "the grandchild still runs")
  end)

  it("100 MB of stderr keeps memory bounded", function()
    -- Reset the peak RSS, so VmHWM shows the peak of this call alone.
    helpers.write("/proc/" .. helpers.pid .. "/clear_refs", "5")
    local function kib(field)
      local status = helpers.read("/proc/" .. helpers.pid .. "/status")
      return tonumber(status:match(field .. ":%s+(%d+) kB"))
    end
    local before = kib("VmRSS")
    local result, run = faulty("flood").list { "/repo" }
    local growth = kib("VmHWM") - before
    print(string.format("\npeak RSS growth over 100 MB of stderr: %d KiB", growth))
    assert.are.same(DOCUMENT, result.archives[1])
    assert.are.equal(0, run.rc)
    assert.is_true(growth < 32 * 1024, "peak RSS grew by " .. growth .. " KiB")
  end)

  it("invalid JSON is a decode error", function()
    local err = raised(faulty("invalid").list, { "/repo" })
    assert.are.equal("decode", err.kind)
    assert.are.equal(0, err.rc)
    assert.truthy(err.message:find("^borg's output is not valid JSON: "), err.message)
  end)

  it("truncated JSON is a decode error", function()
    local err = raised(faulty("truncated").list, { "/repo" })
    assert.are.equal("decode", err.kind)
    assert.truthy(err.message:find("^borg's output is not valid JSON: "), err.message)
  end)

  it("JSON in many small writes decodes", function()
    local result = faulty("split").list { "/repo" }
    assert.are.same(DOCUMENT, result.archives[1])
    assert.are.equal("none", result.encryption.mode)
  end)

  it("no output where JSON was promised", function()
    local err = raised(faulty("silent").list, { "/repo" })
    assert.are.equal("decode", err.kind)
    assert.are.equal("borg's output is not valid JSON: borg exited with status 0"
      .. " and wrote nothing", err.message)
  end)

  it("closed stdout but still running", function()
    local result, run = faulty("close").list { "/repo" }
    assert.are.same(DOCUMENT, result.archives[1])
    -- The record written after stdout closed shows that the host waited.
    assert.are.equal(1, #run.warnings)
    assert.are.equal("still running after closing stdout", run.warnings[1].message)
  end)

  it("program that does not exist", function()
    local api = helpers.instance(dir, { borg = dir .. "/no-such-borg" })
    local err = raised(api.list, { "/repo" })
    assert.are.equal("spawn", err.kind)
    assert.truthy(err.message:find("^cannot run '" .. dir:gsub("%p", "%%%0")
      .. "/no%-such%-borg': no such file or directory %(ENOENT%)"), err.message)
  end)

  it("program that is not executable", function()
    helpers.write(dir .. "/borg", "#!/bin/sh\nexit 0\n")
    local api = helpers.instance(dir, { borg = dir .. "/borg" })
    local err = raised(api.list, { "/repo" })
    assert.are.equal("spawn", err.kind)
    assert.truthy(err.message:find("permission denied (EACCES)", 1, true), err.message)
  end)

  it("program name not found in PATH", function()
    local api = helpers.instance(dir, { borg = "no-such-borg-program",
                                        env = { PATH = dir } })
    local err = raised(api.list, { "/repo" })
    assert.are.equal("spawn", err.kind)
    assert.truthy(err.message:find("(ENOENT)", 1, true), err.message)
  end)
end)
