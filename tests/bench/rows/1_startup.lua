-- Row 1: the start-up of borglua, against plain Lua and against what a
-- Python program pays to import borg's own code.
--
-- BENCH_STARTUP_RUNS: pairs measured (default 30).

return {
  name = "startup",
  run = function(bench)
    local runs = bench.setting("BENCH_STARTUP_RUNS", 30, 2)
    local function borglua()
      return bench.run { bench.borglua, "-e", "" }
    end
    local function lua()
      return bench.run { "lua5.4", "-e", "" }
    end
    local function python()
      return bench.run { bench.python, "-c", "import borg.archiver" }
    end
    local vs_lua = bench.pairs(runs, 3, borglua, lua)
    local vs_python = bench.pairs(math.max(runs // 3, 1), 1, borglua, python)
    local entries = bench.entries({
      id = "1", measure = "startup: borglua -e '' vs lua5.4 -e ''",
      how = "difference", goal = 2,
      method = string.format("from spawn to exit, %d pairs run in turn after 3 not"
        .. " counted, median of the pairwise differences A - B", runs),
    }, vs_lua)
    entries[#entries + 1] = {
      id = "1c", measure = "startup: borglua -e '' vs python3 -c 'import borg.archiver'",
      a = bench.seconds(vs_python.a), b = bench.seconds(vs_python.b),
      result = string.format("× %.3f", vs_python.ratio),
      method = string.format("as 1a with %d pairs after 1 not counted, median of the"
        .. " pairwise ratios of wall time A / B; %s", vs_python.runs, bench.python),
    }
    return entries
  end,
}
