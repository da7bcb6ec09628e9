-- Helpers for the benchmark rows of `make bench`: settings, running and
-- timing programs, comparing two commands side by side, fixtures.
--
-- Every timing here is wall time from the spawn of a program to its exit,
-- read with the monotonic clock of the event loop (core.now). Both sides
-- of a comparison are spawned the same way, so the cost of spawning is
-- in both.

local core = require "borg.core"

local bench = {}

bench.top = os.getenv("BORGLUA_TOP") or "."
bench.borglua = os.getenv("BORGLUA") or (bench.top .. "/build/borglua")
bench.python = os.getenv("BORG_PYTHON") or "/usr/bin/python3"
bench.borg = os.getenv("BENCH_BORG") or "borg"
-- Tiny sizes and one run per measurement: checks that every row still
-- works, and judges no goal.
bench.smoke = os.getenv("BENCH_SMOKE") == "1"

-- Return the environment variable name as a positive integer, or
-- default (smoke_default in smoke mode). Raises on a value that is not
-- a positive integer.
function bench.setting(name, default, smoke_default)
  local text = os.getenv(name)
  if text == nil or text == "" then
    if bench.smoke and smoke_default then
      return smoke_default
    end
    return default
  end
  local value = math.tointeger(tonumber(text))
  if value == nil or value < 1 then
    error(string.format("%s must be a positive integer, got '%s'", name, text), 0)
  end
  return value
end

-- Return text quoted for /bin/sh.
function bench.quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; raise when it fails. For fixtures only, never
-- for what is measured.
function bench.shell(command)
  local ok, how, status = os.execute(command)
  if not ok then
    error(string.format("command failed (%s %s): %s", how, status, command), 0)
  end
end

-- Return a new temporary directory.
function bench.tmpdir()
  local pipe = assert(io.popen("mktemp -d -t borglua-bench.XXXXXX"))
  local dir = pipe:read("l")
  pipe:close()
  assert(dir and dir:find("/borglua%-bench%.%w+$"), "mktemp failed")
  return dir
end

-- Remove a directory made by bench.tmpdir or under build/bench.
function bench.remove(dir)
  assert(dir:find("/borglua%-bench%.%w+") or dir:find("/build/bench"),
    "refusing to remove " .. dir)
  bench.shell("rm -rf " .. bench.quote(dir))
end

-- Call fn(dir) with a new temporary directory, remove the directory
-- afterwards even when fn raised, and return what fn returned.
function bench.with_tmpdir(fn)
  local dir = bench.tmpdir()
  local ok, result = pcall(fn, dir)
  bench.remove(dir)
  if not ok then
    error(result, 0)
  end
  return result
end

-- Return the environment for the programs measured, as a list of
-- "NAME=value": the host's without its BORG_ variables, so that the
-- developer's settings do not change the figures, plus vars.
function bench.env(vars)
  local list = {}
  for name, value in pairs(core.environ()) do
    if not name:find("^BORG_") and vars[name] == nil then
      list[#list + 1] = name .. "=" .. value
    end
  end
  for name, value in pairs(vars) do
    list[#list + 1] = name .. "=" .. value
  end
  table.sort(list)
  return list
end

-- Run argv (program first) to its end. Return the seconds it took (wall
-- time), the processor seconds (user + system) that it and its
-- descendants used, and its stdout (when options.capture is true).
-- options.env is the environment list, options.cwd the working
-- directory. Raises when the program cannot start or exits with a
-- status other than 0.
function bench.run(argv, options)
  options = options or {}
  local stderr = {}
  local cpu_before = core.children_cpu()
  local started = core.now()
  local proc, errname, message = core.spawn {
    file = argv[1], args = argv, env = options.env, cwd = options.cwd,
    stdout = options.capture and "whole" or "null",
  }
  if proc == nil then
    error(string.format("cannot run %s: %s (%s)", argv[1], message, errname), 0)
  end
  local output, rc, signal
  while rc == nil do
    local kind, data, extra = proc:read(true)
    if kind == "stdout" then
      output = data
    elseif kind == "stderr" then
      stderr[#stderr + 1] = data
      if #stderr > 20 then
        table.remove(stderr, 1)
      end
    elseif kind == "exit" then
      rc, signal = data, extra
    end
  end
  local elapsed = core.now() - started
  if rc ~= 0 or signal ~= 0 then
    error(string.format("%s exited with status %d (signal %d):\n%s",
      table.concat(argv, " "), rc, signal, table.concat(stderr, "\n")), 0)
  end
  return elapsed, core.children_cpu() - cpu_before, output
end

-- Return the median of a list of numbers.
function bench.median(values)
  local sorted = table.move(values, 1, #values, 1, {})
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then
    return sorted[(n + 1) // 2]
  end
  return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- Return the medians of list a, of list b, of the ratios a[i] / b[i] and
-- of the differences a[i] - b[i].
local function compare(as, bs)
  local ratios, differences = {}, {}
  for i = 1, #as do
    ratios[i] = as[i] / bs[i]
    differences[i] = as[i] - bs[i]
  end
  return bench.median(as), bench.median(bs), bench.median(ratios),
    bench.median(differences)
end

-- Return the comparison of the runs in walls[1], cpus[1] (side A) with
-- those in walls[k], cpus[k] (side B): the medians of a and b, of the
-- pairwise ratios a / b and of the pairwise differences a - b, for wall
-- time (a, b, ratio, difference) and for processor time (cpu_a, cpu_b,
-- cpu_ratio, cpu_difference, when both sides measured it).
local function comparison(walls, cpus, k, runs)
  local result = { runs = runs }
  result.a, result.b, result.ratio, result.difference = compare(walls[1], walls[k])
  if #cpus[1] == runs and #cpus[k] == runs then
    result.cpu_a, result.cpu_b, result.cpu_ratio, result.cpu_difference =
      compare(cpus[1], cpus[k])
  end
  return result
end

-- Measure commands side by side: a(), b() and each further function run
-- one command and return its wall seconds and, optionally, its processor
-- seconds. They run in turn, a b a b ... (or a b c a b c ...), runs times
-- each after `warmup` rounds that are not counted, so that a drift in the
-- machine's speed affects the sides of each round alike. Returns the
-- comparison of a with b (see comparison), then of a with each further
-- function.
function bench.pairs(runs, warmup, a, b, ...)
  local sides = { a, b, ... }
  for _ = 1, warmup do
    for _, side in ipairs(sides) do
      side()
    end
  end
  local walls, cpus = {}, {}
  for k = 1, #sides do
    walls[k], cpus[k] = {}, {}
  end
  for i = 1, runs do
    for k, side in ipairs(sides) do
      walls[k][i], cpus[k][i] = side()
    end
  end
  local results = {}
  for k = 2, #sides do
    results[k - 1] = comparison(walls, cpus, k, runs)
  end
  return table.unpack(results)
end

-- Return the figure of a comparison that an entry reports, from the
-- medians of bench.pairs: prefix "" for wall time or "cpu_" for processor
-- time.
local function figure(measured, prefix, how)
  if how == "difference" then
    return measured[prefix .. "difference"] * 1000, "%+.1f ms"
  elseif how == "inverse" then
    return 1 / measured[prefix .. "ratio"], "× %.3f"
  end
  return measured[prefix .. "ratio"], "× %.3f"
end

-- Return the table entries of a comparison measured by bench.pairs: id
-- .. "a" by wall time and id .. "b" by processor time (when the pairs
-- measured it). spec fields: id, measure, method (of the wall entry),
-- how ("ratio" for A / B, "inverse" for B / A as a throughput ratio,
-- "difference" for A - B in milliseconds), goal (the bound as a number,
-- nil for none) and at_least (true when the goal is a lower bound).
function bench.entries(spec, measured)
  local entries = {}
  local kinds = { { "a", "", "wall", spec.method } }
  if measured.cpu_a then
    kinds[2] = { "b", "cpu_", "processor", "the runs of " .. spec.id .. "a, user +"
      .. " system time of each side and the processes it waited for" }
  end
  for _, kind in ipairs(kinds) do
    local suffix, prefix, name, method = table.unpack(kind)
    local value, format = figure(measured, prefix, spec.how)
    local entry = {
      id = spec.id .. suffix, measure = spec.measure .. " (" .. name .. ")",
      a = bench.seconds(measured[prefix .. "a"]), b = bench.seconds(measured[prefix .. "b"]),
      result = string.format(format, value), method = method,
    }
    if spec.goal then
      local bound = spec.how == "difference" and string.format("%+g ms", spec.goal)
        or string.format("%g", spec.goal)
      entry.goal = (spec.at_least and "≥ " or "≤ ") .. bound
      entry.met = (spec.at_least and value >= spec.goal) or
        (not spec.at_least and value <= spec.goal)
    end
    entries[#entries + 1] = entry
  end
  return entries
end

-- Return the number of processors that this process may run on.
function bench.processors()
  local pipe = io.popen("nproc 2>/dev/null")
  local count = pipe and tonumber(pipe:read("l"))
  if pipe then
    pipe:close()
  end
  return count or 0
end

-- Return the load averages of the machine (1, 5 and 15 minutes) as text.
function bench.load_average()
  local file = io.open("/proc/loadavg")
  if file == nil then
    return "unknown"
  end
  local text = file:read("l") or ""
  file:close()
  return text:match("^(%S+ %S+ %S+)") or "unknown"
end

-- Return seconds formatted for the table: milliseconds below 1 s.
function bench.seconds(value)
  if value < 1 then
    return string.format("%.1f ms", value * 1000)
  end
  return string.format("%.2f s", value)
end

-- Return the directory for data kept between runs of the benchmark.
function bench.cache_dir()
  return bench.top .. "/build/bench"
end

-- Return a list of the positional arguments of borg for an init that
-- makes an unencrypted repository at path.
function bench.init_argv(path)
  return { bench.borg, "init", "--encryption=none", path }
end

-- Return a tree of count files of size bytes of random data under
-- dir/name, spread over subdirectories; return its path.
function bench.random_tree(dir, name, count, size)
  local root = dir .. "/" .. name
  bench.shell("mkdir -p " .. bench.quote(root))
  for i = 1, count do
    bench.shell(string.format("head -c %d /dev/urandom > %s", size,
      bench.quote(string.format("%s/file-%04d", root, i))))
  end
  return root
end

return bench
