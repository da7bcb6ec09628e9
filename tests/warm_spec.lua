-- Warm borg: calls forked by a server that has imported borg once. The
-- suite runs with warm mode on and off (BORGLUA_WARM=0); the specs here
-- check what each mode must do.

local borg = require "borg"
local core = require "borg.core"
local helpers = require "helpers"

local q = helpers.quote
local warm_on = os.getenv("BORGLUA_WARM") ~= "0"

-- Return the pid of this host process.
local function host_pid()
  local stat = helpers.read("/proc/self/stat")
  return tonumber(stat:match("^(%d+)"))
end

-- Return the parent pid of process pid, or nil when it is gone.
local function parent_of(pid)
  local stat = helpers.read("/proc/" .. pid .. "/stat")
  return stat and tonumber(stat:match("^%d+ %b() %S+ (%d+)"))
end

local function process_alive(pid)
  local _, status = helpers.shell("kill -0 " .. pid .. " 2>/dev/null")
  return status == 0
end

-- Return the full environment list of the host plus "NAME=value" extras.
local function env_list(extra)
  local vars = {}
  for name, value in pairs(core.environ()) do
    vars[name] = value
  end
  for name, value in pairs(extra) do
    vars[name] = value or nil
  end
  local list = {}
  for name, value in pairs(vars) do
    list[#list + 1] = name .. "=" .. value
  end
  return list
end

-- Read the events of proc until it exits; return status, signal.
local function wait_exit(proc)
  while true do
    local kind, data, extra = proc:read(true)
    if kind == "exit" then
      return data, extra
    end
  end
end

describe("warm borg", function()
  local dir, api, repo

  setup(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    api.init{ repo, encryption = "none" }
  end)

  teardown(function()
    helpers.rmdir(dir)
  end)

  -- Run `sh -c script` under borg with-lock on the repository; borg's
  -- pid is $PPID inside it.
  local function with_lock(inst, script, env)
    inst.with_lock({ repo, "/bin/sh", "-c", script }, { env = env })
  end

  it("runs borg as a child of a server only in warm mode", function()
    with_lock(api, "cut -d' ' -f4 /proc/$PPID/stat > " .. q(dir .. "/parent"))
    local parent = tonumber(helpers.read(dir .. "/parent"))
    if warm_on then
      assert.are_not.equal(host_pid(), parent)
      assert.are.equal(host_pid(), parent_of(parent))
    else
      assert.are.equal(host_pid(), parent)
    end
  end)

  it("runs borg with exec when the instance sets warm = false", function()
    local cold = helpers.instance(dir, { warm = false })
    with_lock(cold, "cut -d' ' -f4 /proc/$PPID/stat > " .. q(dir .. "/parent"))
    assert.are.equal(host_pid(), tonumber(helpers.read(dir .. "/parent")))
  end)

  -- borg sets its own umask (--umask, default 0077), so the host's umask
  -- that a warm child gets is not visible here.
  it("gives borg the call's directory, a session and /dev/null", function()
    local out = q(dir .. "/state")
    api.with_lock({ repo, "/bin/sh", "-c", "pwd > " .. out
      .. "; cut -d' ' -f6 /proc/$PPID/stat >> " .. out .. "; echo $PPID >> " .. out
      .. "; readlink /proc/$PPID/fd/0 >> " .. out },
      { cwd = dir })
    local cwd, session, pid, stdin = helpers.read(dir .. "/state"):match(
      "^(.-)\n(%d+)\n(%d+)\n(.-)\n$")
    assert.are.equal(dir, cwd)
    assert.are.equal(pid, session)
    assert.are.equal("/dev/null", stdin)
  end)

  it("reads a passphrase from a descriptor given in fds", function()
    local secret = dir .. "/secret"
    local env = env_list { BORG_BASE_DIR = dir .. "/base", BORG_SELFTEST = "disabled",
                           BORG_PASSPHRASE = false, BORG_PASSCOMMAND = false,
                           BORG_PASSPHRASE_FD = "7" }
    api.init({ secret, encryption = "repokey" }, { env = { BORG_PASSPHRASE = "pw" } })
    local proc = assert(core.spawn {
      file = "borg", args = { "borg", "list", "--json", secret }, env = env,
      stdout = "whole", fds = { [7] = "pw" }, warm = true,
    })
    local stdout
    while true do
      local kind, data, extra = proc:read(true)
      if kind == "stdout" then
        stdout = data
      elseif kind == "exit" then
        assert.are.equal(0, data)
        assert.are.equal(0, extra)
        break
      end
    end
    assert.truthy(stdout:find('"archives": []', 1, true))
    assert.are.equal(warm_on, (proc:warm()))
  end)

  it("stops borg when a call times out", function()
    local ok, err = pcall(api.with_lock, { repo, "sleep", "30" }, { timeout = 3 })
    assert.is_false(ok)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("timed out after 3 s; borg was stopped", err.message)
  end)

  it("passes no variable of one call to the next", function()
    local out = q(dir .. "/value")
    with_lock(api, 'echo "${BORGLUA_SPEC_VALUE-unset}" > ' .. out,
      { BORGLUA_SPEC_VALUE = "first" })
    assert.are.equal("first\n", helpers.read(dir .. "/value"))
    with_lock(api, 'echo "${BORGLUA_SPEC_VALUE-unset}" > ' .. out)
    assert.are.equal("unset\n", helpers.read(dir .. "/value"))
  end)

  -- borg 1.2 reads BORG_HOST_ID when it imports borg.platform, and names
  -- its lock file after it, so a server started for one value must not
  -- serve a call with another.
  it("uses each call's value of a variable borg reads at import", function()
    local script = "ls " .. q(repo .. "/lock.exclusive") .. " > " .. q(dir .. "/lock")
    with_lock(api, script, { BORG_HOST_ID = "spec-first" })
    assert.truthy(helpers.read(dir .. "/lock"):find("^spec%-first%."))
    with_lock(api, script)
    assert.falsy(helpers.read(dir .. "/lock"):find("spec%-first"))
    with_lock(api, script, { BORG_HOST_ID = "spec-second" })
    assert.truthy(helpers.read(dir .. "/lock"):find("^spec%-second%."))
  end)

  it("keeps serving after a child is killed with SIGKILL", function()
    local env = env_list { BORG_BASE_DIR = dir .. "/base", BORG_SELFTEST = "disabled" }
    local marker = dir .. "/locked"
    local function start()
      os.remove(marker)
      local proc = assert(core.spawn {
        file = "borg", args = { "borg", "with-lock", repo, "/bin/sh", "-c",
                                "echo > " .. q(marker) .. "; sleep 30" },
        env = env, stdout = "null", warm = true,
      })
      -- Wait until borg runs the command, so its signal handlers are set.
      for _ = 1, 300 do
        if helpers.read(marker) then
          break
        end
        os.execute("sleep 0.1")
      end
      return proc
    end
    local first = start()
    local server = parent_of(first:pid())
    os.execute("kill -9 " .. first:pid())
    local status, signal = wait_exit(first)
    assert.are.equal(0, status)
    assert.are.equal(9, signal)

    local second = start()
    assert.are.equal(warm_on, (second:warm()))
    assert.are.equal(server, parent_of(second:pid()))
    second:kill()
    status = wait_exit(second)
    assert.are.equal(143, status)
  end)

  it("logs once at debug level why a program runs with exec", function()
    -- A copy of the fake borg, whose note no earlier spec has logged.
    local program = dir .. "/shell-borg"
    os.execute("cp " .. q(helpers.fake_borg) .. " " .. q(program))
    local fake = helpers.instance(dir, { borg = program, log_level = "debug" })
    local records = {}
    local function on_log(record)
      if record.name == "borglua.warm" then
        records[#records + 1] = record
      end
    end
    fake.check({ "/r" }, { on_log = on_log })
    fake.check({ "/r" }, { on_log = on_log })
    if warm_on then
      assert.are.equal(1, #records)
      assert.are.equal("DEBUG", records[1].levelname)
      assert.are.equal(program .. " is not a Python script; running it with"
        .. " exec", records[1].message)
    else
      assert.are.equal(0, #records)
    end
  end)

  it("rejects a warm setting that is not a boolean", function()
    local ok, err = pcall(borg.new, { warm = "yes" })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal([[setting 'warm' must be true or false, got string "yes"]],
      err.message)
  end)

  it("forwards SIGTERM of the host to borg", function()
    helpers.write(dir .. "/term.lua", [[
      local api = borg.new{ env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base")
      .. [[, BORG_SELFTEST = "disabled" } }
      local ok, err = pcall(api.with_lock, { ]] .. string.format("%q", repo) .. [[,
        "/bin/sh", "-c", "echo $PPID > borg.pid; sleep 30" })
      print(err.kind, err.signal, err.rc)
    ]])
    local output = helpers.shell("cd " .. q(dir) .. " && rm -f borg.pid && (" .. q(helpers.borglua)
      .. " term.lua 2>/dev/null & host=$!; for i in $(seq 100); do [ -s borg.pid ] && break;"
      .. " sleep 0.1; done; kill -TERM $host; wait $host; echo \"status $?\")")
    assert.are.equal("signal\t15\t143\nstatus 143\n", output)
    assert.is_false(process_alive(tonumber(helpers.read(dir .. "/borg.pid"))))
  end)

  -- NOTE: with exec, nothing ends borg when the host is killed yet.
  local warm_it = warm_on and it or pending
  warm_it("leaves no server or borg behind when the host is killed", function()
    helpers.write(dir .. "/policy.lua", [[
      local api = borg.new{ env = { BORG_BASE_DIR = ]] .. string.format("%q", dir .. "/base")
      .. [[, BORG_SELFTEST = "disabled" } }
      api.with_lock{ ]] .. string.format("%q", repo) .. [[, "/bin/sh", "-c",
        "echo $PPID > borg.pid; cut -d' ' -f4 /proc/$PPID/stat > server.pid; sleep 30" }
    ]])
    helpers.shell("cd " .. q(dir) .. " && rm -f borg.pid server.pid && (" .. q(helpers.borglua)
      .. " policy.lua & host=$!; for i in $(seq 100); do [ -s server.pid ] && break;"
      .. " sleep 0.1; done; kill -9 $host; wait $host) >/dev/null 2>&1")
    local borg_pid = tonumber(helpers.read(dir .. "/borg.pid"))
    local server_pid = tonumber(helpers.read(dir .. "/server.pid"))
    assert.is_not_nil(borg_pid)
    local gone = false
    for _ = 1, 150 do
      gone = not process_alive(borg_pid) and not process_alive(server_pid)
      if gone then
        break
      end
      os.execute("sleep 0.1")
    end
    assert.is_true(gone)
  end)
end)
