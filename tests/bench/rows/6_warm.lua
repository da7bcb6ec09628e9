-- Row 6: warm borg. The per-call time of `list --json` on a small
-- repository when the shell runs borg, when borglua runs it with exec and
-- through a warm server, and in one Python process that calls borg's
-- archiver as borgapi does; then a policy of 20 small calls end to end.
--
-- BENCH_WARM_CALLS: calls per run (default 5); BENCH_WARM_RUNS: pairs
-- (default 5). The per-call rows time the calls only, after one call that
-- is not counted (it starts the server in warm mode); the policy rows time
-- whole programs, so they include borglua's and the server's start.

-- Python for the in-process loop: parse with one Archiver and call the
-- command's function, as borgapi does, so the self-test does not run per
-- call. Prints the seconds per call.
local PYTHON_LOOP = [[
import io, sys, time, contextlib
from borg.archiver import Archiver
from borg.logger import setup_logging
repo, calls = sys.argv[1], int(sys.argv[2])
setup_logging(level="warning")
archiver = Archiver()
def call():
    args = archiver.get_args(["borg", "list", "--json", repo], None)
    with contextlib.redirect_stdout(io.StringIO()):
        args.func(args)
call()
start = time.monotonic()
for _ in range(calls):
    call()
print((time.monotonic() - start) / calls)
]]

-- A borglua chunk that makes one call not counted, then prints the
-- seconds per call of the next ones.
local BORGLUA_LOOP = [[
local core = require "borg.core"
local repo, calls = %q, %d
borg.list{ repo }
local start = core.now()
for _ = 1, calls do
  borg.list{ repo }
end
io.write((core.now() - start) / calls)
]]

-- Return the environment list of env plus BORGLUA_WARM=value.
local function with_mode(env, value)
  local list = table.move(env, 1, #env, 1, {})
  list[#list + 1] = "BORGLUA_WARM=" .. value
  return list
end

-- Make count repositories of count small archives; return their paths.
local function fixtures(bench, dir, env, count)
  local source = bench.random_tree(dir, "source", 3, 1000)
  local repos = {}
  for r = 1, count do
    repos[r] = dir .. "/repo" .. r
    bench.run(bench.init_argv(repos[r]), { env = env })
    for a = 1, count do
      bench.run({ bench.borg, "create", repos[r] .. "::a" .. a, source }, { env = env })
    end
  end
  return repos
end

-- Write the policy (list and info on each repository, twice: 20 calls
-- for 5 repositories) as a borglua script and as a shell script; return
-- their paths.
local function policies(bench, dir, repos)
  local lua, sh = {}, {}
  for _ = 1, 2 do
    for _, repo in ipairs(repos) do
      lua[#lua + 1] = string.format("borg.list{ %q }; borg.info{ %q }", repo, repo)
      sh[#sh + 1] = string.format("%s list --json %s >/dev/null", bench.borg, bench.quote(repo))
      sh[#sh + 1] = string.format("%s info --json %s >/dev/null", bench.borg, bench.quote(repo))
    end
  end
  local paths = { lua = dir .. "/policy.lua", sh = dir .. "/policy.sh" }
  for kind, lines in pairs { lua = lua, sh = sh } do
    local file = assert(io.open(paths[kind], "w"))
    file:write(table.concat(lines, "\n"), "\n")
    file:close()
  end
  return paths
end

local function python_has_borg(bench)
  local ok = pcall(bench.run, { bench.python, "-c", "import borg.archiver" })
  return ok
end

return {
  name = "warm",
  run = function(bench)
    local calls = bench.setting("BENCH_WARM_CALLS", 5, 1)
    local runs = bench.setting("BENCH_WARM_RUNS", 5, 1)
    local count = bench.smoke and 2 or 5
    return bench.with_tmpdir(function(dir)
      local env = bench.env { BORG_BASE_DIR = dir .. "/base" }
      local repos = fixtures(bench, dir, env, count)
      local repo = repos[1]
      local chunk = string.format(BORGLUA_LOOP, repo, calls)
      local loop_py = dir .. "/loop.py"
      local file = assert(io.open(loop_py, "w"))
      file:write(PYTHON_LOOP)
      file:close()

      local function borglua(mode)
        return function()
          local _, _, output = bench.run({ bench.borglua, "-e", chunk },
            { env = with_mode(env, mode), capture = true })
          return tonumber(output)
        end
      end
      local function shell()
        local loop = string.format("i=0; while [ $i -lt %d ]; do %s list --json %s"
          .. " >/dev/null; i=$((i+1)); done", calls, bench.borg, bench.quote(repo))
        return bench.run({ "sh", "-c", loop }, { env = env }) / calls
      end
      local function in_process()
        local _, _, output = bench.run({ bench.python, loop_py, repo, tostring(calls) },
          { env = env, capture = true })
        return tonumber(output)
      end

      local warm_shell = bench.pairs(runs, 0, borglua("1"), shell)
      local cold_shell = bench.pairs(runs, 0, borglua("0"), shell)
      local per_call = string.format("list --json on a repository of %d archives, %d"
        .. " calls per run after 1 not counted, %d pairs run in turn, median of the"
        .. " pairwise ratios A / B; seconds per call", count, calls, runs)
      local entries = {
        {
          id = "6a", measure = "per call: borglua warm vs shell",
          a = bench.seconds(warm_shell.a), b = bench.seconds(warm_shell.b),
          result = string.format("× %.3f", warm_shell.ratio),
          goal = "≤ 0.2", met = warm_shell.ratio <= 0.2, method = per_call,
        },
        {
          id = "6b", measure = "per call: borglua cold (BORGLUA_WARM=0) vs shell",
          a = bench.seconds(cold_shell.a), b = bench.seconds(cold_shell.b),
          result = string.format("× %.3f", cold_shell.ratio), method = per_call,
        },
      }
      if python_has_borg(bench) then
        local warm_python = bench.pairs(runs, 0, borglua("1"), in_process)
        entries[#entries + 1] = {
          id = "6c", measure = "per call: borglua warm vs Python in-process loop",
          a = bench.seconds(warm_python.a), b = bench.seconds(warm_python.b),
          result = string.format("× %.3f", warm_python.ratio),
          goal = "≤ 2", met = warm_python.ratio <= 2,
          method = per_call .. "; B: one " .. bench.python .. " process that imports"
            .. " borg once and calls get_args and the command's function per call,"
            .. " as borgapi does, with stdout captured",
        }
      end

      local paths = policies(bench, dir, repos)
      local function policy(mode)
        return function()
          return bench.run({ bench.borglua, paths.lua }, { env = with_mode(env, mode) })
        end
      end
      local function policy_shell()
        return bench.run({ "sh", paths.sh }, { env = env })
      end
      local policy_runs = math.max(runs // 2, 1)
      local method = string.format("wall time of the whole program: list and info"
        .. " --json on %d repositories, twice; %d pairs run in turn, median of the"
        .. " pairwise ratios A / B", count, policy_runs)
      for _, mode in ipairs { { "warm", "1" }, { "cold", "0" } } do
        local measured = bench.pairs(policy_runs, 0, policy(mode[2]), policy_shell)
        entries[#entries + 1] = {
          id = mode[1] == "warm" and "6d" or "6e",
          measure = string.format("policy of %d calls: borglua %s vs shell",
            4 * count, mode[1]),
          a = bench.seconds(measured.a), b = bench.seconds(measured.b),
          result = string.format("× %.3f", measured.ratio), method = method,
        }
      end
      return entries
    end)
  end,
}
