-- Signals to the borglua program while the real borg creates an archive,
-- and the program's exit status.
--
-- The create reads a FIFO (read_special) that a writer keeps open after
-- sending some data, so borg holds the repository lock and waits in the
-- middle of the archive for as long as the spec needs. The host program
-- is started through borg.core, so it is the leader of its own session
-- with default signal dispositions (a background job of a shell would
-- inherit SIGINT ignored).

local core = require "borg.core"
local env = require "borg.env"
local helpers = require "helpers"

local q = helpers.quote
local PASSPHRASE = "signals"

local process_state = helpers.process_state
local ends_within = helpers.ends_within

-- Read proc's events until it exits; return its stdout, stderr lines and
-- exit status and signal.
local function wait_exit(proc)
  local stdout, stderr = {}, {}
  while true do
    local kind, data, extra = proc:read(true)
    if kind == "stdout" then
      stdout[#stdout + 1] = data
    elseif kind == "stderr" then
      stderr[#stderr + 1] = data
    elseif kind == "exit" then
      return table.concat(stdout), stderr, data, extra
    end
  end
end

-- Return the environment list of a host program that works in dir.
local function child_env(dir)
  return env.list(env.apply(env.host(), helpers.clean_env(dir,
    { BORG_PASSPHRASE = PASSPHRASE })))
end

-- Give each spec of the enclosing describe a new directory: set(dir,
-- vars) receives it and the environment list of a host working in it.
local function with_directory(set)
  local dir
  before_each(function()
    dir = helpers.tmpdir()
    set(dir, child_env(dir))
  end)
  after_each(function()
    helpers.rmdir(dir)
  end)
end

describe("signals to a borglua running a create", function()
  local dir, api, repo, fifo, vars

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    fifo = dir .. "/fifo"
    api = helpers.instance(dir, { log_level = "error",
                                  env = { BORG_PASSPHRASE = PASSPHRASE } })
    api.init { repo }
    api.create { repo .. "::before", helpers.source_tree(dir) }
    os.execute("mkfifo " .. q(fifo))
    vars = child_env(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Start the writer of the FIFO; return it once borg has read 300 kB.
  local function start_writer()
    local writer = assert(core.spawn { file = "/bin/sh", env = vars, stdout = "lines",
      args = { "sh", "-c", "exec 3>" .. q(fifo) .. "; head -c 300000 /dev/urandom >&3;"
        .. " echo ready; exec sleep 120" } })
    local kind, line = writer:read(true)
    assert.are.equal("line", kind)
    assert.are.equal("ready", line)
    return writer
  end

  -- Start the host on a create that reads the FIFO, and the writer that
  -- feeds it. Return both processes and borg's pid once borg has read
  -- 300 kB of the FIFO.
  local function start_create(script_tail)
    local script = "local ok, err = pcall(borg.create, { " .. string.format("%q", repo)
      .. " .. '::long', " .. string.format("%q", fifo) .. ", read_special = true })\n"
      .. (script_tail or "if not ok then error(err, 0) end")
    local host = assert(core.spawn { file = helpers.borglua, env = vars, stdout = "whole",
      args = { helpers.borglua, "-e", script }, grace = 60 })
    local writer = start_writer()
    local borg_pid = helpers.shell("pgrep -P " .. host:pid()):match("^(%d+)")
    assert.is_not_nil(borg_pid, "the host has no child")
    return host, writer, borg_pid
  end

  local function stop_writer(writer)
    writer:kill(9)
    wait_exit(writer)
  end

  -- The repository is usable without break-lock, passes check and still
  -- has only the archive made before the signal.
  local function assert_repository_intact()
    local names = {}
    for _, archive in ipairs(api.list { repo }.archives) do
      names[#names + 1] = archive.name
    end
    assert.are.same({ "before" }, names)
    assert.is_nil((api.check { repo }))
  end

  it("SIGTERM stops borg, waits and exits 143", function()
    local host, writer, borg_pid = start_create()
    local sent = core.now()
    host:kill(15)
    local stdout, stderr, status, signal = wait_exit(host)
    local elapsed = core.now() - sent
    stop_writer(writer)
    print(string.format("\nSIGTERM to exit of borglua: %.2f s", elapsed))

    assert.are.equal(143, status)
    assert.are.equal(0, signal)
    assert.are.equal("", stdout)
    assert.are.equal("borglua: borg create: interrupted by SIGTERM; borg was stopped"
      .. " (rc 143)", stderr[#stderr])
    -- The host reaped borg before it exited: no zombie is left.
    assert.is_nil(process_state(borg_pid))
    assert_repository_intact()
  end)

  it("SIGINT stops borg, lets the script clean up and exits 130", function()
    local host, writer, borg_pid = start_create(
      "print(ok, err.kind, err.signal, err.rc)\nprint('cleanup ran')")
    host:kill(2)
    local stdout, _, status, signal = wait_exit(host)
    stop_writer(writer)

    assert.are.equal(130, status)
    assert.are.equal(0, signal)
    -- borg ended by itself with its error status.
    assert.are.equal("false\tsignal\t2\t2\ncleanup ran\n", stdout)
    assert.is_nil(process_state(borg_pid))
    assert_repository_intact()
  end)

  it("SIGKILL of the host still ends borg", function()
    local host, writer, borg_pid = start_create()
    host:kill(9)
    local _, _, _, signal = wait_exit(host)
    assert.are.equal(9, signal)
    -- Nothing forwards this one: the parent-death signal ends borg.
    assert.is_true(ends_within(borg_pid, 30), "borg outlived its host")
    stop_writer(writer)
    assert_repository_intact()
  end)

  it("SIGKILL of stock lua5.4 with borg.so still ends borg", function()
    local script = "package.cpath = " .. string.format("%q", helpers.top .. "/build/?.so;")
      .. " .. package.cpath\nlocal borg = require 'borg'\n"
      .. "borg.create{ " .. string.format("%q", repo) .. " .. '::long', "
      .. string.format("%q", fifo) .. ", read_special = true }"
    local host = assert(core.spawn { file = "/usr/bin/lua5.4", env = vars,
      args = { "lua5.4", "-e", script } })
    local writer = start_writer()
    local borg_pid = helpers.shell("pgrep -P " .. host:pid()):match("^(%d+)")
    assert.is_not_nil(borg_pid)
    host:kill(9)
    wait_exit(host)
    assert.is_true(ends_within(borg_pid, 30), "borg outlived its host")
    stop_writer(writer)
    assert_repository_intact()
  end)
end)

-- Here tests/bin/fault-borg replaces the real borg: it is slow to stop
-- after a signal, as a create is while it writes its checkpoint.
describe("signals to a borglua whose borg is slow to stop", function()
  local dir, vars
  with_directory(function(new_dir, new_vars)
    dir, vars = new_dir, new_vars
  end)

  -- Start the host on a check by fault-borg in mode; return the host
  -- and the stand-in's pid once it runs.
  local function start_host(mode, trap)
    local pids = dir .. "/pids"
    local script = string.format([[
      local api = borg.new { borg = %q, env = { FAULT_BORG_MODE = %q,
        FAULT_BORG_PIDS = %q, FAULT_BORG_TRAP = %s } }
      local ok, err = pcall(api.check, { "/repo" })
      print(ok, err.kind, err.rc)
      io.stderr:write(err.message, "\n", tostring(err.signal), " ",
        tostring(err.interrupted), "\n")
    ]], helpers.top .. "/tests/bin/fault-borg", mode, pids, trap and '"1"' or "nil")
    local host = assert(core.spawn { file = helpers.borglua, env = vars, stdout = "whole",
      args = { helpers.borglua, "-e", script }, grace = 60 })
    for _ = 1, 100 do
      local text = helpers.read(pids)
      if text and text:find("%d+\n") then
        return host, text:match("%d+")
      end
      os.execute("sleep 0.1")
    end
    error("fault-borg did not start")
  end

  it("gives borg 30 s after SIGINT", function()
    local host, pid = start_host("slow-stop")
    host:kill(2)
    local stdout, _, status = wait_exit(host)
    assert.are.equal(130, status)
    -- It exited 2 after its 7 s of clean-up; killed, it would have no rc.
    assert.are.equal("false\tsignal\t2\n", stdout)
    assert.is_nil(process_state(pid))
  end)

  it("forwards a second SIGINT", function()
    local host = start_host("slow-stop")
    host:kill(2)
    os.execute("sleep 0.5")
    host:kill(2)
    local stdout, _, status = wait_exit(host)
    assert.are.equal(130, status)
    assert.are.equal("false\tsignal\t3\n", stdout)
  end)

  -- The stand-in is a shell script, which warm servers do not start, so
  -- a second run in warm mode would only repeat the 30 s wait.
  local cold_it = os.getenv("BORGLUA_WARM") == "0" and it or pending
  cold_it("sends SIGTERM after the wait", function()
    local host, pid = start_host("term-only")
    local sent = core.now()
    host:kill(2)
    local stdout, _, status = wait_exit(host)
    local elapsed = core.now() - sent
    assert.are.equal(130, status)
    -- It exited 5 on SIGTERM: no SIGKILL was needed.
    assert.are.equal("false\tsignal\t5\n", stdout)
    assert.is_true(elapsed >= 29, string.format("took %.1f s", elapsed))
    assert.is_nil(process_state(pid))
  end)

  it("kills at the third signal", function()
    local host, pid = start_host("hang", true)
    local sent = core.now()
    for _ = 1, 3 do
      host:kill(15)
      os.execute("sleep 0.3")
    end
    local stdout, stderr, status = wait_exit(host)
    local elapsed = core.now() - sent
    assert.are.equal(143, status)
    -- Killed, borg has no exit status of its own.
    assert.are.equal("false\tsignal\tnil\n", stdout)
    assert.are.equal("interrupted by SIGTERM; borg did not stop in time and was killed"
      .. " (SIGKILL); its lock, if any, is removed by the next borg call on this host",
      stderr[1])
    -- SIGKILL ended borg; the host's own signal was SIGTERM.
    assert.are.equal("9 15", stderr[2])
    -- Long before the 30 s that the first signal would have given it.
    assert.is_true(elapsed < 20, string.format("took %.1f s", elapsed))
    assert.is_true(ends_within(pid, 5))
  end)
end)

describe("exit status of borglua on the real borg", function()
  local dir, vars
  with_directory(function(new_dir, new_vars)
    dir, vars = new_dir, new_vars
  end)

  local function run_host(script)
    local host = assert(core.spawn { file = helpers.borglua, env = vars, stdout = "whole",
      args = { helpers.borglua, "-e", script } })
    return wait_exit(host)
  end

  it("is 0, 1 or 2 as the calls went", function()
    local repo = string.format("%q", dir .. "/repo")
    local src = string.format("%q", helpers.source_tree(dir))
    local _, _, status = run_host("borg.init{ " .. repo .. " }; borg.create{ " .. repo
      .. " .. '::a', " .. src .. " }")
    assert.are.equal(0, status)

    local stdout
    stdout, _, status = run_host("borg.create{ " .. repo .. " .. '::b', " .. src
      .. ", " .. string.format("%q", dir .. "/vanished") .. " }; print('went on')")
    assert.are.equal(1, status)
    assert.are.equal("went on\n", stdout)

    local stderr
    stdout, stderr, status = run_host("borg.list{ " .. string.format("%q", dir .. "/nope")
      .. " }; print('not reached')")
    assert.are.equal(2, status)
    assert.are.equal("", stdout)
    assert.are.same({ "borglua: borg list: repository " .. dir .. "/nope does not exist"
      .. " (Repository.DoesNotExist, rc 2). Check the path, or create the repository"
      .. " with borg.init{ REPOSITORY, encryption = ... }" }, stderr)
  end)
end)
