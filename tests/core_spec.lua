-- The C core (borg.core): spawning with libuv, pipes, lines, timeouts.

local core = require "borg.core"
local helpers = require "helpers"

-- Run /bin/sh -c script through the core and collect everything it
-- reports until it exits.
local function run(script, spec)
  spec = spec or {}
  spec.file = "/bin/sh"
  spec.args = { "/bin/sh", "-c", script }
  spec.env = spec.env or { "PATH=/usr/bin:/bin" }
  local proc = assert(core.spawn(spec))
  local out = { stdout = {}, lines = {}, stderr = {}, pid = proc:pid() }
  while true do
    local kind, data, extra, timed_out = proc:read(true)
    if kind == "stdout" then
      out.stdout[#out.stdout + 1] = data
    elseif kind == "line" then
      out.lines[#out.lines + 1] = data
    elseif kind == "stderr" then
      out.stderr[#out.stderr + 1] = data
    else
      out.status, out.signal, out.timed_out = data, extra, timed_out
      break
    end
  end
  out.stdout = table.concat(out.stdout)
  return out
end

local open_fds = helpers.open_fds

describe("core.spawn", function()
  it("returns stdout whole and stderr as lines", function()
    local out = run([[printf 'one\ntwo'; printf 'e1\ne2\n' >&2; exit 3]],
      { stdout = "whole" })
    assert.are.equal("one\ntwo", out.stdout)
    assert.are.same({ "e1", "e2" }, out.stderr)
    assert.are.equal(3, out.status)
    assert.are.equal(0, out.signal)
  end)

  it("splits stdout into lines, keeping a last line without newline", function()
    local out = run([[printf 'a\n\nb\nlast']], { stdout = "lines" })
    assert.are.same({ "a", "", "b", "last" }, out.lines)
  end)

  it("reads stdout and stderr together, never one to the end first", function()
    -- 2 MB on stderr before any stdout: a reader that waited for the end of
    -- stdout first would leave the child blocked on a full stderr pipe.
    local out = run([[head -c 2000000 /dev/zero | tr '\0' 'x' | fold -w 99 >&2;
                      head -c 3000000 /dev/zero]], { stdout = "whole", timeout = 30 })
    assert.is_false(out.timed_out)
    assert.are.equal(3000000, #out.stdout)
    assert.are.equal(math.ceil(2000000 / 99), #out.stderr)
  end)

  it("runs several children on one loop at the same time", function()
    local procs = {}
    for i = 1, 3 do
      procs[i] = assert(core.spawn {
        file = "/bin/sh", args = { "/bin/sh", "-c", "sleep 0.3; echo " .. i },
        env = { "PATH=/usr/bin:/bin" }, stdout = "whole",
      })
    end
    assert.are.equal(3, core.live())
    for i = 1, 3 do
      assert.is_not_nil(helpers.read("/proc/" .. procs[i]:pid() .. "/stat"))
    end
    for i = 3, 1, -1 do
      local kind, data = procs[i]:read(true)
      assert.are.equal("stdout", kind)
      assert.are.equal(i .. "\n", data)
      assert.are.equal("exit", (procs[i]:read(true)))
    end
    assert.are.equal(0, core.live())
  end)

  it("gives the child only the environment it is handed", function()
    local out = run([[echo "$BORGLUA_X:${HOME-unset}"]],
      { stdout = "whole", env = { "BORGLUA_X=1" } })
    assert.are.equal("1:unset\n", out.stdout)
  end)

  it("puts stdin on /dev/null", function()
    local out = run([[readlink /proc/self/fd/0; cat; echo end]], { stdout = "whole" })
    assert.are.equal("/dev/null\nend\n", out.stdout)
  end)

  it("starts the child in a session of its own", function()
    local out = run([[cut -d' ' -f6 /proc/$$/stat; readlink /proc/$$/fd/2 >/dev/null]],
      { stdout = "whole" })
    assert.are.equal(tostring(out.pid) .. "\n", out.stdout)
  end)

  it("writes to the child's stdin when asked for a pipe", function()
    local proc = assert(core.spawn { file = "/bin/cat", args = { "cat" }, env = {},
                                     stdin = "pipe", stdout = "whole" })
    proc:write("hello ")
    proc:write("world")
    proc:close_stdin()
    local kind, data = proc:read(true)
    assert.are.equal("stdout", kind)
    assert.are.equal("hello world", data)
    assert.are.equal("exit", (proc:read(true)))
  end)

  it("writes all queued stdin before closing it", function()
    local proc = assert(core.spawn { file = "/usr/bin/wc", args = { "wc", "-c" },
                                     env = {}, stdin = "pipe", stdout = "whole" })
    proc:write(string.rep("x", 5000000))
    proc:close_stdin()
    local kind, data = proc:read(true)
    assert.are.equal("stdout", kind)
    assert.are.equal("5000000\n", data)
    assert.are.equal("exit", (proc:read(true)))
  end)

  it("keeps only max_stdout bytes of a whole stdout", function()
    local out = run("head -c 5000 /dev/zero", { stdout = "whole", max_stdout = 1000 })
    assert.are.equal(1000, #out.stdout)
    assert.are.equal(0, out.status)
  end)

  it("gives the child none of the host's other descriptors", function()
    local dir = helpers.tmpdir()
    local file = assert(io.open(dir .. "/open-in-host", "w"))
    local out = run("ls -l /proc/self/fd/", { stdout = "whole" })
    file:close()
    assert.falsy(out.stdout:find("open-in-host", 1, true), out.stdout)
    helpers.rmdir(dir)
  end)

  it("hands extra descriptors to the child, filled and closed", function()
    local out = run([[cat <&3; echo; cat <&3]], { stdout = "whole",
                                                  fds = { [3] = "s3cret" } })
    assert.are.equal("s3cret\n", out.stdout)
  end)

  it("reports a program that does not exist", function()
    local proc, name, message = core.spawn { file = "/nonexistent/borg",
                                             args = { "borg" }, env = {} }
    assert.is_nil(proc)
    assert.are.equal("ENOENT", name)
    assert.are.equal("no such file or directory", message)
    assert.are.equal(0, core.live())
  end)

  it("stops a child that runs past its timeout", function()
    local out = run("sleep 30", { timeout = 0.3 })
    assert.is_true(out.timed_out)
    assert.are.equal(15, out.signal)
  end)

  it("kills a child that ignores SIGTERM after the grace period", function()
    local out = run([[trap '' TERM; sleep 30; echo survived]],
      { timeout = 0.3, grace = 0.3, stdout = "whole" })
    assert.is_true(out.timed_out)
    assert.are.equal(9, out.signal)
    assert.are.equal("", out.stdout)
  end)

  it("kills the whole process group, grandchildren included", function()
    local dir = helpers.tmpdir()
    local out = run("sleep 30 & echo $! > " .. dir .. "/pid; wait", { timeout = 0.3 })
    assert.is_true(out.timed_out)
    local grandchild = helpers.read(dir .. "/pid"):gsub("%s", "")
    -- The grandchild was signalled with its group. It is gone, or a zombie
    -- waiting for init to reap it.
    os.execute("sleep 0.2")
    local stat = helpers.read("/proc/" .. grandchild .. "/stat")
    assert.is_true(stat == nil or stat:match("^%d+ %(.-%) (%a)") == "Z")
    helpers.rmdir(dir)
  end)

  it("stops reading pipes held by a grandchild in another session", function()
    local dir = helpers.tmpdir()
    local out = run("setsid sh -c 'echo $$ > " .. dir .. "/pid; sleep 30' & sleep 0.2;"
      .. " echo done", { stdout = "whole", timeout = 20 })
    assert.is_false(out.timed_out)
    assert.are.equal("done\n", out.stdout)
    local grandchild = helpers.read(dir .. "/pid"):gsub("%s", "")
    -- still running: the host returned without waiting for it
    assert.is_not_nil(helpers.read("/proc/" .. grandchild .. "/stat"))
    os.execute("kill " .. grandchild)
    helpers.rmdir(dir)
  end)

  it("keeps a timeout below a millisecond", function()
    local out = run("sleep 5", { timeout = 0.0005 })
    assert.is_true(out.timed_out)
  end)

  it("reads to the end a pipe it paused after the child exited", function()
    -- More than the 4 MiB that pause reading, then, once reading has
    -- paused, 30 KB that wait in the pipe while the child exits.
    local line = string.rep("x", 99)
    local proc = assert(core.spawn {
      file = "/bin/sh", env = { "PATH=/usr/bin:/bin" }, stdout = "lines",
      args = { "sh", "-c", "yes " .. line .. " | head -n 42400; sleep 0.3;"
        .. " yes " .. line .. " | head -n 300" },
    })
    -- Run the loop for longer than the drain period without reading.
    local sleeper = assert(core.spawn { file = "/bin/sleep", args = { "sleep", "2" },
                                        env = {} })
    repeat
      local kind = sleeper:read(true)
    until kind == "exit"
    local lines = 0
    while true do
      local kind = proc:read(true)
      if kind == "exit" then
        break
      end
      lines = lines + 1
    end
    assert.are.equal(42700, lines)
  end)

  it("treats a huge timeout as no timeout", function()
    local out = run("echo ok", { stdout = "whole", timeout = math.huge, grace = math.huge })
    assert.is_false(out.timed_out)
    assert.are.equal("ok\n", out.stdout)
  end)

  it("rejects arguments that are not strings", function()
    local ok, err = pcall(core.spawn, { file = "/bin/echo", args = { "echo", 5 } })
    assert.is_false(ok)
    assert.truthy(err:find("args[2] is not a string", 1, true))
    ok, err = pcall(core.spawn, { file = "/bin/echo", args = {} })
    assert.is_false(ok)
    assert.truthy(err:find("'args' is empty", 1, true))
    ok, err = pcall(core.spawn, { file = "/bin/echo", args = { "echo" }, cwd = "/\0x" })
    assert.is_false(ok)
    assert.truthy(err:find("'cwd' contains a NUL byte", 1, true))
  end)

  it("survives a finalizer that reads the same process", function()
    local proc = assert(core.spawn { file = "/usr/bin/seq", args = { "seq", "1", "20000" },
                                     env = {}, stdout = "lines" })
    local reads = 0
    local function arm()
      setmetatable({}, { __gc = function()
        reads = reads + 1
        proc:read()
        arm()
      end })
    end
    collectgarbage("incremental", 1, 1000)
    arm()
    local lines = 0
    while true do
      local kind = proc:read(true)
      if kind == "exit" then
        break
      end
      lines = lines + 1
      for _ = 1, 10 do
        local garbage = {} -- luacheck: ignore
      end
    end
    collectgarbage("incremental", 200, 100)
    collectgarbage("collect")
    assert.is_true(reads > 0)
    assert.is_true(lines <= 20000)
  end)

  it("does not wait for a grandchild that keeps the pipes open", function()
    local out = run([[sleep 30 & echo started]], { stdout = "whole", timeout = 20 })
    assert.is_false(out.timed_out)
    assert.are.equal("started\n", out.stdout)
  end)

  it("keeps only the first part of an over-long stderr line", function()
    local proc = assert(core.spawn {
      file = "/bin/sh", args = { "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x >&2" },
      env = { "PATH=/usr/bin:/bin" }, max_line = 1000,
    })
    local kind, data, truncated = proc:read(true)
    assert.are.equal("stderr", kind)
    assert.are.equal(1000, #data)
    assert.is_true(truncated)
    repeat
      kind = proc:read(true)
    until kind == "exit"
  end)

  -- Run the script name of directory dir in a borglua of its own, remove
  -- dir, and return the output and exit status.
  local function run_script(dir, name)
    local output, status = helpers.shell(helpers.quote(helpers.borglua) .. " "
      .. helpers.quote(dir .. "/" .. name) .. " 2>&1")
    helpers.rmdir(dir)
    return output, status
  end

  it("forget_interrupt drops a queued signal", function()
    -- The prompt clears each chunk's Ctrl-C. One caught while a child
    -- lived on (a mount) must not stop the next chunk's borg call.
    local script = helpers.tmpdir()
    helpers.write(script .. "/queued.lua", [[
      local core = require "borg.core"
      local sys = require "borg.sys"
      local child = assert(core.spawn { file = "/bin/sleep", args = { "sleep", "30" },
                                        stdout = "null" })
      -- io.popen, not os.execute: system() ignores SIGINT while it waits.
      io.popen("kill -INT " .. sys.getpid()):close()
      core.forget_interrupt()
      core.sleep(0.2) -- runs the loop, which would deliver a queued signal
      print(core.interrupted(), sys.alive(child:pid()))
      child:kill(9)
      repeat until child:read(true) == "exit"
    ]])
    local output, status = run_script(script, "queued.lua")
    assert.are.equal(0, status, output)
    assert.are.equal("nil\ttrue\n", output)
  end)

  it("catches a signal that the child sends at once", function()
    -- A separate host: without the fix the signal kills it.
    local script = helpers.tmpdir()
    helpers.write(script .. "/signal.lua", [[
      local core = require "borg.core"
      for _ = 1, 20 do
        local proc = assert(core.spawn { file = "/bin/sh", stdout = "null",
          args = { "/bin/sh", "-c", "kill -TERM $PPID" } })
        repeat until proc:read(true) == "exit"
        assert(core.interrupted() == 15, "the host saw no SIGTERM")
        core.forget_interrupt()
      end
      print("survived")
    ]])
    local output, status = run_script(script, "signal.lua")
    assert.are.equal(0, status, output)
    assert.are.equal("survived\n", output)
  end)

  it("leaves no descriptor open and no zombie behind", function()
    local before = open_fds()
    local pids = {}
    for i = 1, 20 do
      local out = run("echo " .. i .. "; echo e >&2", { stdout = "whole",
                                                       fds = { [3] = "x" } })
      pids[i] = out.pid
    end
    assert.are.equal(before, open_fds())
    for _, pid in ipairs(pids) do
      assert.is_nil(helpers.read("/proc/" .. pid .. "/stat"))
    end
  end)
end)
