-- The borglua program: arguments, exit status, embedded modules, and the
-- example nightly policy on real files.

local helpers = require "helpers"

local q = helpers.quote

describe("the borglua program", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Run borglua with a shell command line tail; return stdout+stderr and
  -- the exit status.
  local function borglua(args, env)
    return helpers.shell("cd " .. q(dir) .. " && " .. (env or "") .. " "
      .. q(helpers.borglua) .. " " .. args .. " 2>&1")
  end

  -- Start borglua with args in the background, wait until the file
  -- `ready` (in dir) exists, send it signal, and return its output, which
  -- ends with "status N". prefix runs before it in the same subshell.
  local function signal_host(args, ready, signal, prefix)
    return helpers.shell("cd " .. q(dir) .. " && (" .. (prefix or "") .. " "
      .. q(helpers.borglua) .. " " .. args .. " 2>&1 & host=$!; for i in $(seq 50);"
      .. " do [ -s " .. q(ready) .. " ] && break; sleep 0.1; done; kill -" .. signal
      .. " $host; wait $host; echo \"status $?\")")
  end

  local hang_borg = string.format("%q", helpers.top .. "/tests/bin/hang-borg")

  it("sets arg and the chunk's varargs as lua does", function()
    helpers.write(dir .. "/show.lua", [[
      print(arg[0], arg[1], arg[2], #arg, select("#", ...), ...)
      print(arg[-1] ~= nil)
    ]])
    local output, status = borglua("show.lua one 'two words'")
    assert.are.equal(0, status)
    assert.are.equal("show.lua\tone\ttwo words\t2\t2\tone\ttwo words\ntrue\n", output)
  end)

  it("runs a chunk given with -e", function()
    local output, status = borglua("-e 'print(1 + 1)'")
    assert.are.equal(0, status)
    assert.are.equal("2\n", output)
  end)

  it("runs the script on standard input", function()
    local output, status = helpers.shell("echo 'print(\"from stdin\")' | "
      .. q(helpers.borglua) .. " -")
    assert.are.equal(0, status)
    assert.are.equal("from stdin\n", output)
    output, status = helpers.shell("echo 'print(\"piped\")' | " .. q(helpers.borglua))
    assert.are.equal(0, status)
    assert.are.equal("piped\n", output)
  end)

  it("prints its own version and borg's", function()
    local output, status = borglua("--version")
    assert.are.equal(0, status)
    assert.truthy(output:find("^borglua %d+%.%d+%.%d+ %(Lua 5%.4%)\nborg 1%.2%.%d+\n$"))
  end)

  it("has the borg table and cjson without any Lua file on disk", function()
    -- Decoys where a disk lookup would find them: ./borg, ./lua/borg and
    -- LUA_PATH. None of them may be read.
    for _, sub in ipairs { "borg", "lua/borg" } do
      os.execute("mkdir -p " .. q(dir .. "/" .. sub))
      for _, name in ipairs { "init", "argv", "errors", "process", "commands" } do
        helpers.write(dir .. "/" .. sub .. "/" .. name .. ".lua",
          "error('read " .. sub .. "/" .. name .. ".lua from disk')")
      end
    end
    helpers.write(dir .. "/cjson.lua", "error('read cjson.lua from disk')")
    local output, status = borglua("-e " .. q("local b = require 'borg'; "
      .. "print(b == borg, require('cjson').encode({1}), type(b.create))"),
      "LUA_PATH=" .. q(dir .. "/?.lua;" .. dir .. "/?/init.lua") .. " LUA_CPATH=")
    assert.are.equal(0, status)
    assert.are.equal("true\t[1]\tfunction\n", output)
  end)

  it("exits with 2 and a message on an uncaught error", function()
    local output, status = borglua("-e 'error(\"boom\")'")
    assert.are.equal(2, status)
    assert.truthy(output:find("^borglua: %(command line%):1: boom\nstack traceback:"))
  end)

  it("prints an error without a msgid once", function()
    -- borg's record for prune without rules has no msgid: it becomes the
    -- error's message and is not printed as a log line as well.
    local init = borglua("-e " .. q("borg.init{ 'r', encryption = 'none' }"),
      "BORG_BASE_DIR=" .. q(dir) .. " BORG_REPO= BORG_PASSPHRASE=")
    assert.is_nil(init:find("error", 1, true), init)
    local output, status = borglua("-e " .. q("borg.prune{ 'r' }"),
      "BORG_BASE_DIR=" .. q(dir) .. " BORG_REPO= BORG_PASSPHRASE=")
    assert.are.equal(2, status)
    local _, count = output:gsub("must be specified", "")
    assert.are.equal(1, count, output)
    assert.truthy(output:find("^borglua: borg prune: at least one of"), output)
  end)

  it("prints a borg error without a traceback", function()
    local output, status = borglua("-e " .. q("borg.list{ '" .. dir .. "/nope' }"),
      "BORG_BASE_DIR=" .. q(dir) .. " BORG_REPO= BORG_PASSPHRASE=")
    assert.are.equal(2, status)
    assert.are.equal("borglua: borg list: repository " .. dir .. "/nope does not exist"
      .. " (Repository.DoesNotExist, rc 2). Check the path, or create the repository"
      .. " with borg.init{ REPOSITORY, encryption = ... }\n", output)
  end)

  it("exits with 1 when a borg call warned", function()
    local script = "borg.new{ borg = " .. string.format("%q", helpers.fake_borg)
      .. " }.prune{ '/r', keep_last = 1 }; print('after')"
    local output, status = borglua("-e " .. q(script), "FAKE_BORG_EXIT=1")
    assert.are.equal(1, status)
    assert.are.equal("after\n", output)
  end)

  it("rejects an unknown option with its usage", function()
    local output, status = borglua("--frobnicate")
    assert.are.equal(2, status)
    assert.truthy(output:find("^borglua: unknown option '%-%-frobnicate'\nusage: borglua"))
  end)

  it("refuses further borg calls after an interrupt", function()
    helpers.write(dir .. "/policy.lua", [[
      local api = borg.new{ borg = ]] .. hang_borg .. [[ }
      local ok, err = pcall(api.check, { "/r" })
      print("first", err.kind, err.signal)
      ok, err = pcall(api.check, { "/r" })
      print("second", err.kind, err.message)
      print("cleanup ran")
    ]])
    local output = signal_host("policy.lua", "borg.pid", "TERM", "HANG_BORG_PID=borg.pid")
    assert.are.equal("first\tsignal\t15\nsecond\tsignal\tnot started: the host was"
      .. " interrupted by SIGTERM and runs no more borg commands\ncleanup ran\n"
      .. "status 143\n", output)
  end)

  -- A shell without job control starts background commands with SIGINT
  -- ignored; the trap makes that explicit.
  it("keeps SIGINT ignored when it started ignored", function()
    local script = "borg.new{ borg = " .. hang_borg .. " }.check({ '/r' }, { timeout = 2 })"
    local output = signal_host("-e " .. q(script), "borg.pid", "INT",
      "trap '' INT; HANG_BORG_PID=borg.pid")
    assert.truthy(output:find("timed out after 2 s", 1, true), output)
    assert.truthy(output:find("status 2\n$"), output)
  end)

  it("enters the prompt after a chunk with -i, reading stdin", function()
    local output, status = helpers.shell("printf 'print(1 + 1)\\n' | "
      .. q(helpers.borglua) .. " -i -e 'print(\"chunk\")'")
    assert.are.equal(0, status)
    assert.are.equal("chunk\n> 2\n> \n", output)
  end)

  it("ends when the reader of its stdout goes away", function()
    local output = helpers.shell("(timeout 10 " .. q(helpers.borglua)
      .. " -e 'while true do print(\"line\") end'; echo \"status $?\" >&2)"
      .. " 2>&1 >/dev/null | head -c 0; true")
    assert.are.equal("", output)
    output = helpers.shell("((timeout 10 " .. q(helpers.borglua)
      .. " -e 'while true do print(\"line\") end'; echo \"status $?\" >&3) | head -n 1)"
      .. " 3>&1")
    -- 141 is death by SIGPIPE; 124 would mean the timeout had to stop it
    assert.are.equal("line\nstatus 141\n", output)
  end)

  it("works with stdin, stdout and stderr closed", function()
    local script = "borg.new{ borg = " .. string.format("%q", helpers.fake_borg)
      .. " }.check{ '/r' }; io.open(" .. string.format("%q", dir .. "/done")
      .. ", 'w'):close()"
    local _, status = helpers.shell(q(helpers.borglua) .. " -e " .. q(script)
      .. " <&- >&- 2>&-")
    assert.are.equal(0, status)
    assert.is_not_nil(helpers.read(dir .. "/done"))
  end)

  it("keeps a signal that arrives as borg exits", function()
    local record = '{"type": "log_message", "levelname": "WARNING", "name": "x",'
      .. ' "message": "slow"}'
    helpers.write(dir .. "/policy.lua", [[
      local api = borg.new{ borg = ]] .. string.format("%q", helpers.fake_borg) .. [[ }
      api.check({ "/r" }, { on_log = function()
        local busy = io.open("]] .. dir .. [[/busy", "w")
        busy:write("busy")
        busy:close()
        -- Busy for up to 10 s, so a loaded machine still signals in time.
        local now = require("borg.core").now
        local start = now()
        while now() - start < 10 do end
      end })
      print("not reached")
    ]])
    local output = signal_host("policy.lua", "busy", "TERM", "FAKE_BORG_STDERR=" .. q(record))
    assert.falsy(output:find("not reached", 1, true), output)
    assert.truthy(output:find("interrupted by SIGTERM", 1, true), output)
    assert.truthy(output:find("status 143\n$"), output)
  end)

  it("does not print Python's GetPassWarning before a prompt error", function()
    local env = "BORG_BASE_DIR=" .. q(dir .. "/base") .. " BORG_REPO="
    helpers.shell(env .. " BORG_PASSPHRASE=pw borg init -e repokey " .. q(dir .. "/repo")
      .. " 2>/dev/null")
    local output, status = borglua("-e " .. q("borg.list{ '" .. dir .. "/repo' }"),
      "env -u BORG_PASSPHRASE -u BORG_PASSCOMMAND " .. env)
    assert.are.equal(2, status)
    assert.falsy(output:find("GetPassWarning", 1, true), output)
    assert.truthy(output:find("NoPassphraseFailure", 1, true), output)
  end)

  it("gives an embedding C host its SIGINT handler back", function()
    local output, status = helpers.shell(q(helpers.top .. "/build/embed_signal") .. " "
      .. q(helpers.fake_borg) .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.are.equal("embed_signal: the host's SIGINT handler ran\n", output)
  end)

  it("raises a signal error for a call that waited for its repository", function()
    helpers.write(dir .. "/wait.lua", [[
      local api = borg.new{ borg = ]] .. hang_borg .. [[ }
      local results = borg.parallel {
        function() return api.check { "/r" } end,
        function() return api.check { "/r" } end,
      }
      local err = results[2].error
      print(type(err) == "table" and err.kind or "plain error", tostring(err))
    ]])
    local output = signal_host("wait.lua", "borg.pid", "TERM", "HANG_BORG_PID=borg.pid")
    assert.truthy(output:find("^signal\tborg check: not started: the host was"
      .. " interrupted by SIGTERM"), output)
  end)

  it("reports a mount interrupted before it is live", function()
    helpers.write(dir .. "/mount.lua", [[
      local api = borg.new{ borg = ]] .. hang_borg .. [[ }
      local ok, err = pcall(api.mount, { "/r::a", "mnt" })
      print(err.kind, err.message)
    ]])
    os.execute("mkdir " .. q(dir .. "/mnt"))
    local output = signal_host("mount.lua", "borg.pid", "TERM", "HANG_BORG_PID=borg.pid")
    assert.are.equal("signal\tinterrupted by SIGTERM; borg was stopped\nstatus 143\n",
      output)
  end)

  it("exits with 143 on SIGTERM and leaves no child behind", function()
    local script = "borg.new{ borg = " .. hang_borg .. " }.check{ '/r' }"
    local output, status = signal_host("-e " .. q(script), "borg.pid", "TERM",
      "HANG_BORG_PID=borg.pid")
    assert.are.equal(0, status)
    assert.truthy(output:find("status 143\n$"), output)
    assert.truthy(output:find("interrupted by SIGTERM", 1, true), output)
    local child = helpers.read(dir .. "/borg.pid"):gsub("%s", "")
    local stat = helpers.read("/proc/" .. child .. "/stat")
    assert.is_true(stat == nil or stat:match("^%d+ %(.-%) (%a)") == "Z")
  end)
end)

describe("scripts/nightly.lua", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("backs up real files twice from another directory", function()
    local src = helpers.source_tree(dir)
    local command = "cd / && BORG_BASE_DIR=" .. q(dir .. "/base")
      .. " BORG_PASSPHRASE=nightly BORG_REPO= BORG_PASSCOMMAND= " .. q(helpers.borglua)
      .. " " .. q(helpers.top .. "/scripts/nightly.lua") .. " " .. q(dir .. "/repo")
      .. " " .. q(src) .. " 2>/dev/null"
    local first, status = helpers.shell(command)
    assert.are.equal(0, status, first)
    local lines = {}
    for line in first:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.are.equal(5, #lines, first)
    assert.truthy(lines[1]:find("^init     " .. dir:gsub("%p", "%%%0")
      .. "/repo: created %(repokey%) in [%d.]+ s$"))
    assert.truthy(lines[2]:find("^create   .+: 3 files, [%d.]+ [KMG]?i?B original, "
      .. "[%d.]+ [KMG]?i?B deduplicated in [%d.]+ s$"), lines[2])
    assert.truthy(lines[3]:find("^prune    kept 1, pruned 0 archives in [%d.]+ s$"))
    assert.truthy(lines[4]:find("^compact  freed .+ in [%d.]+ s$"), lines[4])
    assert.truthy(lines[5]:find("^check    repository and 1 archives OK in [%d.]+ s$"))

    os.execute("sleep 1") -- archive names carry the time to the second
    local second
    second, status = helpers.shell(command)
    assert.are.equal(0, status, second)
    assert.falsy(second:find("init"))
    local dedup = second:match("original, (%d+) B deduplicated")
    assert.is_not_nil(dedup, second)
    assert.is_true(tonumber(dedup) < 2000)
    assert.truthy(second:find("check    repository and 2 archives OK"))
  end)

  it("prints its usage without arguments", function()
    local output, status = helpers.shell(q(helpers.borglua) .. " "
      .. q(helpers.top .. "/scripts/nightly.lua") .. " 2>&1")
    assert.are.equal(2, status)
    assert.are.equal("usage: borglua scripts/nightly.lua REPOSITORY SOURCE...\n", output)
  end)
end)
