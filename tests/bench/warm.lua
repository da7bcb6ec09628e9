-- Benchmark of warm borg: per-call latency of `list --json` on a small
-- repository, started from the shell, by borglua with exec, by borglua
-- through a warm server, and by an in-process Python loop that calls
-- borg.archiver as borgapi does; then a policy of 20 small calls.
--
--   build/borglua tests/bench/warm.lua [CALLS]
--
-- Prints one row per way with the mean seconds per call and its ratio to
-- the shell. Figures depend on the machine and its load.

local borg = require "borg"
local core = require "borg.core"

local calls = tonumber(arg and arg[1]) or 10
local python = os.getenv("BORG_PYTHON") or "/usr/bin/python3"

local function quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

local function shell(command)
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("a")
  assert(pipe:close(), "command failed: " .. command)
  return output
end

-- Return the seconds that fn takes.
local function timed(fn)
  local start = core.now()
  fn()
  return core.now() - start
end

local dir = shell("mktemp -d -t borglua-bench.XXXXXX"):gsub("%s+$", "")
local env = { BORG_BASE_DIR = dir .. "/base", BORG_SELFTEST = false,
              BORG_PASSPHRASE = false, BORG_PASSCOMMAND = false, BORG_REPO = false }
local exports = "BORG_BASE_DIR=" .. quote(dir .. "/base")
  .. " BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes"

-- Five repositories of five small archives each.
local repos = {}
local setup = borg.new{ env = env }
shell("mkdir -p " .. quote(dir .. "/src") .. " && echo data > " .. quote(dir .. "/src/file"))
for r = 1, 5 do
  repos[r] = dir .. "/repo" .. r
  setup.init{ repos[r], encryption = "none" }
  for a = 1, 5 do
    setup.create{ repos[r] .. "::a" .. a, dir .. "/src" }
  end
end
local repo = repos[1]

local rows = {}

local function row(name, seconds, count)
  rows[#rows + 1] = { name = name, per_call = seconds / count }
end

-- (a) the shell runs borg once per call
row("shell: borg list --json", timed(function()
  shell(exports .. " sh -c 'for i in $(seq " .. calls .. "); do borg list --json "
    .. quote(repo) .. " >/dev/null; done'")
end), calls)

-- (b) and (c): borglua with exec and with a warm server. The set-up
-- above already started the server; the policy rows below include its
-- start.
local function borglua_row(name, warm)
  local api = borg.new{ env = env, warm = warm }
  api.list{ repo }
  row(name, timed(function()
    for _ = 1, calls do
      api.list{ repo }
    end
  end), calls)
end
borglua_row("borglua cold (exec)", false)
borglua_row("borglua warm", true)

-- (d) one Python process that imports borg once and then, per command,
-- parses the arguments with one Archiver and calls the command's
-- function, as borgapi does (no self-test per call).
local loop = [[
import io, sys, time, contextlib
from borg.archiver import Archiver
repo, calls = sys.argv[1], int(sys.argv[2])
archiver = Archiver()
start = time.monotonic()
for _ in range(calls):
    args = archiver.get_args(["borg", "list", "--json", repo], None)
    with contextlib.redirect_stdout(io.StringIO()):
        args.func(args)
print(time.monotonic() - start)
]]
local script = dir .. "/loop.py"
local file = assert(io.open(script, "w"))
file:write(loop)
file:close()
local ok, output = pcall(shell, exports .. " " .. quote(python) .. " " .. quote(script)
  .. " " .. quote(repo) .. " " .. calls .. " 2>/dev/null")
if ok and tonumber(output) then
  row("python in-process loop (like borgapi)", tonumber(output), calls)
end

-- A policy of 20 small calls, list and info on each of the five
-- repositories twice, end to end: a shell script, and a borglua program
-- in each mode, each timed from its start to its exit.
local policy_shell, policy_lua = {}, { "local api = borg.new{}" }
for _ = 1, 2 do
  for r = 1, 5 do
    policy_shell[#policy_shell + 1] = "borg list --json " .. quote(repos[r]) .. " >/dev/null"
    policy_shell[#policy_shell + 1] = "borg info --json " .. quote(repos[r]) .. " >/dev/null"
    policy_lua[#policy_lua + 1] = string.format("api.list{ %q }; api.info{ %q }",
      repos[r], repos[r])
  end
end
local policy = dir .. "/policy.lua"
file = assert(io.open(policy, "w"))
file:write(table.concat(policy_lua, "\n"), "\n")
file:close()
local program = os.getenv("BORGLUA") or "build/borglua"
local policy_rows = {}
policy_rows[1] = { name = "policy of 20 calls: shell", seconds = timed(function()
  shell(exports .. " sh -c " .. quote(table.concat(policy_shell, "; ")))
end) }
for _, mode in ipairs { "cold", "warm" } do
  policy_rows[#policy_rows + 1] = { name = "policy of 20 calls: borglua " .. mode,
    seconds = timed(function()
      shell(exports .. " BORGLUA_WARM=" .. (mode == "warm" and "1" or "0") .. " "
        .. quote(program) .. " " .. quote(policy))
    end) }
end

local shell_call = rows[1].per_call
print(string.format("%-48s %10s %8s", "list --json, " .. calls .. " calls", "s/call", "x shell"))
for _, r in ipairs(rows) do
  print(string.format("%-48s %10.3f %8.2f", r.name, r.per_call, r.per_call / shell_call))
end
print(string.format("%-48s %10s %8s", "policy", "s total", "x shell"))
for _, r in ipairs(policy_rows) do
  print(string.format("%-48s %10.2f %8.2f", r.name, r.seconds,
    r.seconds / policy_rows[1].seconds))
end

shell("rm -rf " .. quote(dir))
