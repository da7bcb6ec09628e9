-- Row 2: the cost of one borg call made through borglua, against the
-- same argument vector run by the shell.
--
-- BENCH_CALLS: calls per run (default 3); BENCH_CALL_RUNS: pairs (default 9).
-- Many short pairs rather than a few long ones, because the median of
-- their ratios resists the noise of other work on the machine better.

local borg = require "borg"

return {
  name = "per_call",
  run = function(bench)
    local calls = bench.setting("BENCH_CALLS", 3, 2)
    local runs = bench.setting("BENCH_CALL_RUNS", 9, 1)
    return bench.with_tmpdir(function(dir)
      local repo = dir .. "/repo"
      local env = bench.env { BORG_BASE_DIR = dir .. "/base" }
      bench.run(bench.init_argv(repo), { env = env })
      bench.run({ bench.borg, "create", repo .. "::one", bench.top .. "/src" }, { env = env })
      -- The argv that borglua builds for the call, so that the shell runs
      -- exactly the same command.
      local api = borg.new { borg = bench.borg, env = { BORG_BASE_DIR = dir .. "/base" } }
      local _, run = api.list { repo, json = true }
      local script = string.format("local borg = require 'borg' for _ = 1, %d do"
        .. " borg.list { %q, json = true } end io.write(os.clock())", calls, repo)
      local loop = string.format("i=0; while [ $i -lt %d ]; do \"$@\" >/dev/null;"
        .. " i=$((i+1)); done", calls)
      local shell_argv = { "sh", "-c", loop, "sh" }
      table.move(run.argv, 1, #run.argv, #shell_argv + 1, shell_argv)
      -- The host's own processor time (os.clock in the borglua process)
      -- is what borglua adds, whatever else runs on the machine.
      local host_cpu = {}
      local measured = bench.pairs(runs, 0,
        function()
          local seconds, cpu, output = bench.run({ bench.borglua, "-e", script },
            { env = env, capture = true })
          host_cpu[#host_cpu + 1] = tonumber(output) / calls
          return seconds, cpu
        end,
        function() return bench.run(shell_argv, { env = env }) end)
      return bench.entries({
        id = "2", measure = string.format("%d × list --json: borglua vs shell", calls),
        how = "ratio", goal = 1.01,
        method = string.format("A: borglua -e running borg.list{ repo, json = true } %d"
          .. " times; B: sh running `%s` %d times with stdout to /dev/null; same"
          .. " environment; %d pairs run in turn, median of the pairwise ratios A / B;"
          .. " borglua's own processor time is %.1f ms per call (median of os.clock in"
          .. " the borglua process, its start-up included)", calls,
          table.concat(run.argv, " "), calls, runs, bench.median(host_cpu) * 1000),
      }, measured)
    end)
  end,
}
