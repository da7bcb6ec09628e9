-- Row 5: two repositories backed up with borg.parallel against one after
-- the other, each side in its own borglua process.
--
-- BENCH_PARALLEL_MB: MiB of random data in the source tree (default 256);
-- BENCH_PARALLEL_RUNS: pairs (default 3).

return {
  name = "parallel",
  run = function(bench)
    local size = bench.setting("BENCH_PARALLEL_MB", 256, 1)
    local runs = bench.setting("BENCH_PARALLEL_RUNS", 3, 1)
    local script = bench.top .. "/tests/bench/create_two.lua"
    return bench.with_tmpdir(function(dir)
      local env = bench.env { BORG_BASE_DIR = dir .. "/base" }
      local files = 16
      local source = bench.random_tree(dir, "source", files, size * 1024 * 1024 // files)
      -- Each run starts from two new repositories, so that nothing is
      -- deduplicated against an earlier run.
      local function backup(mode)
        local first, second = dir .. "/first", dir .. "/second"
        bench.run(bench.init_argv(first), { env = env })
        bench.run(bench.init_argv(second), { env = env })
        -- Processor time is not returned: the point of the row is wall time.
        local seconds = bench.run({ bench.borglua, script, mode, first, second, source },
          { env = env })
        bench.remove(first)
        bench.remove(second)
        return seconds
      end
      local measured = bench.pairs(runs, 0,
        function() return backup("parallel") end,
        function() return backup("sequential") end)
      return { {
        id = "5", measure = string.format("create into 2 repositories (%d MiB each):"
          .. " parallel vs sequential", size),
        a = bench.seconds(measured.a), b = bench.seconds(measured.b),
        result = string.format("× %.3f", measured.ratio),
        goal = "≤ 0.6", met = measured.ratio <= 0.6,
        method = string.format("A: borglua running borg.parallel{ create r1, create r2 };"
          .. " B: borglua running the same creates one after the other; %d files of"
          .. " random data, unencrypted new repositories each run; %d pairs run in"
          .. " turn, median of the pairwise ratios of wall time A / B", files, runs),
      } }
    end)
  end,
}
