-- Row 3: iterating over a large archive with borg.iter.list against
-- borg list --json-lines to /dev/null, and the peak memory of the
-- borglua process at two archive sizes.
--
-- BENCH_LIST_ITEMS: files in the large archive (default 200000); the
-- small archive has a quarter of them. Both are built once and kept
-- under build/bench/listing-N. BENCH_LIST_RUNS: pairs (default 3).

local borg = require "borg"

local MIB = 1024

-- Build the repository with the archives "full" and "small" under dir,
-- unless an earlier run did. Files are empty: the items are what counts.
local function build_fixture(bench, dir, items, env)
  if io.open(dir .. "/complete") then
    return
  end
  bench.remove(dir)
  bench.shell("mkdir -p " .. bench.quote(dir))
  local folders = math.max(items // 1000, 4)
  local per_folder = items // folders
  local tree = dir .. "/tree"
  bench.shell(string.format("mkdir -p %s && cd %s && for d in $(seq -w 1 %d); do"
    .. " mkdir d$d && (cd d$d && seq -f f%%06g 1 %d | xargs touch); done",
    bench.quote(tree), bench.quote(tree), folders, per_folder))
  bench.run(bench.init_argv(dir .. "/repo"), { env = env })
  bench.run({ bench.borg, "create", dir .. "/repo::full", "tree" }, { env = env, cwd = dir })
  local small = { bench.borg, "create", dir .. "/repo::small" }
  local digits = #tostring(folders)
  for d = 1, folders // 4 do
    small[#small + 1] = string.format("tree/d%0" .. digits .. "d", d)
  end
  bench.run(small, { env = env, cwd = dir })
  bench.remove(tree)
  assert(io.open(dir .. "/complete", "w")):close()
end

-- Return the item count, peak memory (KiB) and borglua's own processor
-- seconds that iterate_list.lua printed, and the wall and processor
-- seconds of the whole run.
local function iterate(bench, location, env)
  local seconds, cpu, output = bench.run({ bench.borglua,
    bench.top .. "/tests/bench/iterate_list.lua", location }, { env = env, capture = true })
  local count, peak, host = output:match("^(%d+) (%d+) (%S+)")
  return tonumber(count), tonumber(peak), tonumber(host), seconds, cpu
end

return {
  name = "listing",
  unavailable = function()
    if not pcall(function() return borg.iter.list end) then
      return "borg.iter.list does not exist in this build"
    end
    return nil
  end,
  run = function(bench)
    local items = bench.setting("BENCH_LIST_ITEMS", 200000, 400)
    local runs = bench.setting("BENCH_LIST_RUNS", 3, 1)
    local dir = string.format("%s/listing-%d", bench.cache_dir(), items)
    local env = bench.env { BORG_BASE_DIR = dir .. "/base" }
    build_fixture(bench, dir, items, env)

    local full, small = dir .. "/repo::full", dir .. "/repo::small"
    local count, peaks, host_cpu = 0, {}, {}
    local measured = bench.pairs(runs, 0,
      function()
        local n, peak, host, seconds, cpu = iterate(bench, full, env)
        count = n
        peaks[#peaks + 1] = peak
        host_cpu[#host_cpu + 1] = host
        return seconds, cpu
      end,
      function()
        return bench.run({ "sh", "-c", "exec \"$@\" > /dev/null", "sh", bench.borg,
          "list", "--json-lines", full }, { env = env })
      end)
    -- The cost that any reader of borg's pipe pays: borg flushes each line with
    -- its own write, and each write to a pipe wakes the reader.
    local piped = bench.pairs(runs, 0,
      function()
        return bench.run({ "sh", "-c", "\"$@\" | cat > /dev/null", "sh", bench.borg,
          "list", "--json-lines", full }, { env = env })
      end,
      function()
        return bench.run({ "sh", "-c", "exec \"$@\" > /dev/null", "sh", bench.borg,
          "list", "--json-lines", full }, { env = env })
      end)
    piped.cpu_a = nil
    local full_peak = math.max(table.unpack(peaks))
    local small_count, small_peak = iterate(bench, small, env)
    local limit = 32 * MIB
    local entries = bench.entries({
      id = "3", measure = string.format("iterate %d items: borg.iter.list vs"
        .. " borg list --json-lines > /dev/null", count),
      how = "ratio", goal = 1.05,
      method = string.format("A: borglua tests/bench/iterate_list.lua counting every"
        .. " item of a for loop over borg.iter.list; B: sh running borg list"
        .. " --json-lines with stdout to /dev/null; %d pairs run in turn, median of"
        .. " the pairwise ratios A / B; borglua's own processor time is %.1f µs per"
        .. " item (median of os.clock in the borglua process)", runs,
        bench.median(host_cpu) / count * 1e6),
    }, measured)
    local memory = {
      {
        id = "3c", measure = string.format("peak memory of borglua, %d items", small_count),
        a = string.format("%.1f MiB", small_peak / MIB),
        result = string.format("%.1f MiB", small_peak / MIB),
        goal = "≤ 32 MiB", met = small_peak <= limit,
        method = "VmHWM of the borglua process itself (not borg), read from"
          .. " /proc/self/status after the loop",
      },
      {
        id = "3d", measure = string.format("peak memory of borglua, %d items", count),
        a = string.format("%.1f MiB", full_peak / MIB),
        result = string.format("%+.1f MiB over 3c", (full_peak - small_peak) / MIB),
        goal = "≤ 32 MiB, ≤ 1.25 × 3c", met = full_peak <= limit
          and full_peak <= 1.25 * small_peak,
        method = "as 3c, the largest of the timed runs of 3a; an archive 4 times"
          .. " larger must not need more memory",
      },
    }
    table.move(memory, 1, #memory, #entries + 1, entries)
    local reference = bench.entries({
      id = "3e", measure = string.format("reference, %d items: borg list --json-lines piped"
        .. " to cat > /dev/null vs > /dev/null", count),
      how = "ratio",
      method = string.format("the lower bound of 3a for any program that reads borg's"
        .. " output from a pipe; %d pairs run in turn, median of the pairwise ratios",
        runs),
    }, piped)[1]
    reference.id = "3e"
    entries[#entries + 1] = reference
    return entries
  end,
}
