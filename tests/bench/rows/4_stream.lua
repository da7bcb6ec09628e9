-- Row 4: a create of "-" fed by a Lua function through the run table's
-- stdin, against borg create reading the same bytes from a file, and
-- from a pipe that cat feeds.
--
-- BENCH_STREAM_MB: MiB of random data (default 1024);
-- BENCH_STREAM_RUNS: pairs (default 3).

local borg = require "borg"

return {
  name = "stream",
  unavailable = function()
    -- A build without streaming stdin rejects the function before borg
    -- starts; with it, borg runs and fails on the missing repository.
    local ok, err = pcall(borg.create, { "/nonexistent/borglua-bench::a", "-" },
      { stdin = function() return nil end })
    if not ok and borg.is_error(err) and err.kind == "usage" then
      return "a function as stdin is not supported in this build: " .. err.message
    end
    return nil
  end,
  run = function(bench)
    local size = bench.setting("BENCH_STREAM_MB", 1024, 4)
    local runs = bench.setting("BENCH_STREAM_RUNS", 3, 1)
    return bench.with_tmpdir(function(dir)
      local env = bench.env { BORG_BASE_DIR = dir .. "/base" }
      local data = dir .. "/data"
      bench.shell(string.format("head -c %dM /dev/urandom > %s", size, bench.quote(data)))
      local repo = dir .. "/repo"
      -- A new repository for each run, so that nothing is deduplicated
      -- against an earlier run.
      local host_cpu = {}
      local function timed(argv)
        bench.run(bench.init_argv(repo), { env = env })
        local seconds, cpu, output = bench.run(argv, { env = env, capture = true })
        bench.remove(repo)
        return seconds, cpu, output
      end
      local measured, through_cat = bench.pairs(runs, 0,
        function()
          local seconds, cpu, output = timed { bench.borglua,
            bench.top .. "/tests/bench/stream_create.lua", repo .. "::a", data }
          host_cpu[#host_cpu + 1] = tonumber(output)
          return seconds, cpu
        end,
        function()
          return timed { "sh", "-c", "exec \"$@\" < \"$0\"", data, bench.borg, "create",
            repo .. "::a", "-" }
        end,
        function()
          return timed { "sh", "-c", "cat \"$0\" | \"$@\"", data, bench.borg, "create",
            repo .. "::a", "-" }
        end)
      local entries = bench.entries({
        id = "4", measure = string.format("create of %d MiB from stdin: Lua function vs"
          .. " borg create - < file", size),
        how = "inverse", goal = 0.95, at_least = true,
        method = string.format("A: borglua tests/bench/stream_create.lua, a function"
          .. " returning 1 MiB reads of the file as the run table's stdin; B: sh running"
          .. " borg create repo::a - < file; random data, a new unencrypted repository"
          .. " each run; %d pairs run in turn, throughput ratio = median of the pairwise"
          .. " ratios of time B / A; A's throughput %.0f MiB/s, B's %.0f MiB/s;"
          .. " borglua's own processor time is %.2f s (median of os.clock in the"
          .. " borglua process)", runs, size / measured.a, size / measured.b,
          bench.median(host_cpu)),
      }, measured)
      -- The same runs of A against borg reading a pipe that cat feeds,
      -- which shows what any pipe costs against a file as stdin.
      local piped = bench.entries({
        id = "4", measure = string.format("create of %d MiB from stdin: Lua function vs"
          .. " cat file piped to borg create -", size),
        how = "inverse",
        method = string.format("the runs of 4a against a third command run in turn with"
          .. " them, sh running cat file | borg create repo::a -"),
      }, through_cat)
      piped[1].id, piped[2].id = "4c", "4d"
      piped[2].method = "the runs of 4c, user + system time of each side and the processes"
        .. " it waited for"
      table.move(piped, 1, 2, #entries + 1, entries)
      return entries
    end)
  end,
}
