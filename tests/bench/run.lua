-- The benchmark of borglua against the bare borg program and plain Lua:
--
--   make bench                  (or build/borglua tests/bench/run.lua [ROW...])
--   BENCH_SMOKE=1 make bench    tiny sizes, one run each: checks that the
--                               rows still work and judges no goal
--
-- Each file tests/bench/rows/NN_name.lua is one row (or a group of rows)
-- and runs in the order of its number; ROW arguments pick rows by name.
-- A row file returns { name = ..., unavailable = function(bench) ...,
-- run = function(bench) return { entry, ... } end }, where unavailable
-- (optional) returns why the row cannot run here or nil, and each entry
-- has id, measure, a, b, result, goal, met (true, false or nil when the
-- row has no goal), method and, for a goal not met, why.
-- Sizes and run counts come from BENCH_* variables named in each row.
--
-- Prints one table and exits with 1 when a row failed to run.

local core = require "borg.core"

local top = os.getenv("BORGLUA_TOP") or "."
package.path = top .. "/tests/bench/?.lua;" .. package.path
local bench = require "measure"

-- Return the row files in order of their number.
local function row_files()
  local pipe = assert(io.popen("ls " .. bench.quote(top .. "/tests/bench/rows")))
  local files = {}
  for name in pipe:lines() do
    local number = name:match("^(%d+)_[%w_]+%.lua$")
    if number then
      files[#files + 1] = { number = tonumber(number), path = top .. "/tests/bench/rows/" .. name }
    end
  end
  pipe:close()
  table.sort(files, function(x, y)
    return x.number < y.number
  end)
  return files
end

-- Return true when the row is among the names given on the command line,
-- or when none was given.
local function wanted(row, names)
  if #names == 0 then
    return true
  end
  for _, name in ipairs(names) do
    if name == row.name then
      return true
    end
  end
  return false
end

-- Run one row; return its entries, with an entry that says why when it
-- could not run or failed, and true when it failed.
local function run_row(row, number)
  local reason = row.unavailable and row.unavailable(bench)
  if reason then
    return { { id = tostring(number), measure = row.name, result = "not run",
               why = reason } }, false
  end
  local ok, entries = pcall(row.run, bench)
  if not ok then
    return { { id = tostring(number), measure = row.name, result = "failed",
               why = tostring(entries) } }, true
  end
  return entries, false
end

local function verdict(entry)
  if entry.met == nil then
    return "-"
  elseif bench.smoke then
    return "smoke"
  end
  return entry.met and "yes" or "NO"
end

-- Print rows (lists of strings) as a Markdown table with aligned columns.
local function print_table(header, rows)
  local widths = {}
  for _, row in ipairs({ header, table.unpack(rows) }) do
    for i, cell in ipairs(row) do
      widths[i] = math.max(widths[i] or 0, utf8.len(cell) or #cell)
    end
  end
  local function line(row)
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = cell .. string.rep(" ", widths[i] - (utf8.len(cell) or #cell))
    end
    print("| " .. table.concat(cells, " | ") .. " |")
  end
  line(header)
  local rules = {}
  for i, width in ipairs(widths) do
    rules[i] = string.rep("-", width)
  end
  line(rules)
  for _, row in ipairs(rows) do
    line(row)
  end
end

local function main(names)
  local started = core.now()
  local load_before = bench.load_average()
  local entries, failed = {}, false
  for _, file in ipairs(row_files()) do
    local row = dofile(file.path)
    if wanted(row, names) then
      io.stderr:write(string.format("bench: row %d (%s)...\n", file.number, row.name))
      local row_entries, row_failed = run_row(row, file.number)
      failed = failed or row_failed
      table.move(row_entries, 1, #row_entries, #entries + 1, entries)
    end
  end

  local rows = {}
  for i, entry in ipairs(entries) do
    rows[i] = { entry.id, entry.measure, entry.a or "", entry.b or "",
                entry.result or "", entry.goal or "", verdict(entry) }
  end
  print(string.format("borglua bench%s, %s, %d processors, load average %s at the"
    .. " start and %s at the end", bench.smoke and " (smoke: tiny sizes)" or "",
    os.date("!%Y-%m-%d %H:%M UTC"), bench.processors(), load_before, bench.load_average()))
  print()
  print_table({ "row", "measure", "A", "B", "result", "goal", "met" }, rows)
  print()
  for _, entry in ipairs(entries) do
    if entry.method then
      print(string.format("%s: %s", entry.id, entry.method))
    end
    if entry.why then
      print(string.format("%s: %s", entry.id, entry.why))
    end
  end
  print(string.format("\nwhole benchmark: %.0f s", core.now() - started))
  if failed then
    os.exit(1)
  end
end

main({ ... })
