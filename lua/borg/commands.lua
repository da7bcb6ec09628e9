-- The output each command requests from borg, and how its result is built.
--
-- plan(args, ctx) runs before borg starts. It may rewrite args, a copy
-- owned by the call, for example to add --json where that is how borg
-- gives the requested data. It returns the plan: the outputs the call
-- requested, in order, and how to read borg's stdout. result(plan, state)
-- runs after a successful exit and builds the value the call returns.
-- Following borgapi's capture rules, one requested output is returned
-- bare, several as a table keyed by output name, none as nil.

local errors = require "borg.errors"
local format = require "borg.format"
local json = require "borg.json"

local commands = {}

-- Return true when location names an archive ("repo::name" or "::name").
local function is_archive(location)
  return type(location) == "string" and location:find("::.", 1) ~= nil
end

-- Raise a decode error for output that is not the JSON borg promised.
local function decode_error(ctx, state, what, detail)
  error(errors.new {
    kind = "decode",
    command = ctx.command,
    rc = state.rc,
    message = string.format("borg's %s is not valid JSON: %s", what, detail),
    argv = ctx.argv,
  }, 0)
end

-- Raise a decode error when borg wrote more on stdout than is kept.
local function check_size(ctx, state)
  if state.stdout_truncated then
    error(errors.new {
      kind = "decode",
      command = ctx.command,
      rc = state.rc,
      message = string.format("borg wrote more than %s on stdout, the most"
        .. " borglua keeps in memory", format.size(ctx.max_stdout)),
      argv = ctx.argv,
    }, 0)
  end
end

-- Decode borg's whole stdout as one JSON document.
local function decode_stdout(ctx, state)
  check_size(ctx, state)
  local text = state.stdout or ""
  if not text:find("%S") then
    decode_error(ctx, state, "output", string.format(
      "borg exited with status %d and wrote nothing", state.rc))
  end
  local value, err = json.decode(text)
  if value == nil then
    decode_error(ctx, state, "output", err)
  end
  return value
end

-- Start a plan; outputs are added in the order the caller reads them.
local function new_plan()
  return { outputs = {}, stdout = "null" }
end

local function want(plan, name)
  plan.outputs[#plan.outputs + 1] = name
end

-- Size units of borg's text statistics (format_file_size), in bytes.
local UNITS = {
  B = 1, kB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12, PB = 1e15, EB = 1e18,
  KiB = 1024, MiB = 1024 ^ 2, GiB = 1024 ^ 3, TiB = 1024 ^ 4, PiB = 1024 ^ 5,
}

local function parse_sizes(text)
  local sizes = {}
  for number, unit in text:gmatch("(%-?[%d.]+) (%a+)") do
    local scale = UNITS[unit]
    if scale == nil or tonumber(number) == nil then
      return nil
    end
    sizes[#sizes + 1] = math.floor(tonumber(number) * scale + 0.5)
  end
  return sizes
end

local STATS_ROWS = {
  ["Deleted data:"] = "deleted",
  ["This archive:"] = "archive",
  ["All archives:"] = "all_archives",
}

-- Parse the text statistics that prune and delete print with --stats.
-- borg rounds these sizes to three significant digits, so they are
-- approximate, and the table's field `approximate` is true.
local function parse_stats(lines)
  local stats = { approximate = true }
  for _, line in ipairs(lines) do
    local label, rest = line:match("^(%a[%a ]*:)%s+(.*)$")
    local key = label and STATS_ROWS[label]
    if key then
      local sizes = parse_sizes(rest)
      if sizes and #sizes == 3 then
        stats[key] = {
          original_size = sizes[1],
          compressed_size = sizes[2],
          deduplicated_size = sizes[3],
        }
      end
    elseif label == "Chunk index:" then
      local unique, total = rest:match("^(%d+)%s+(%d+)")
      if unique then
        stats.chunk_index = {
          unique_chunks = math.tointeger(tonumber(unique)),
          total_chunks = math.tointeger(tonumber(total)),
        }
      end
    end
  end
  return stats
end

-- Parse one line of `prune --list` into { action, archive, time, id, rule,
-- rule_number }. action is "keep", "prune" or, with --dry-run,
-- "would_prune"; kept checkpoints have rule "checkpoint".
local PRUNE_HEADS = {
  { "^Keeping archive %(rule: (.-) #(%d+)%):%s+(.*)$", "keep" },
  { "^Keeping checkpoint archive:%s+(.*)$", "keep", "checkpoint" },
  { "^Would prune:%s+(.*)$", "would_prune" },
  { "^Pruning archive %(%d+/%d+%):%s+(.*)$", "prune" },
}

local function parse_prune_line(line)
  for _, head in ipairs(PRUNE_HEADS) do
    local captures = { line:match(head[1]) }
    if #captures > 0 then
      local rest = table.remove(captures)
      local name, time, id = rest:match(
        "^(.-)%s+(%a%a%a, %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d) %[(%x+)%]$")
      if name then
        return {
          action = head[2],
          archive = name,
          time = time,
          id = id,
          rule = head[3] or captures[1],
          rule_number = captures[2] and math.tointeger(tonumber(captures[2])),
        }
      end
    end
  end
  return { action = "unknown", message = line }
end

-- Return the result value for plan from named output values.
local function shape(plan, values)
  if #plan.outputs == 0 then
    return nil
  end
  if #plan.outputs == 1 then
    return values[plan.outputs[1]]
  end
  local result = {}
  for _, name in ipairs(plan.outputs) do
    result[name] = values[name]
  end
  return result
end

local function data_from_stdin(command, args, ctx, index)
  if args[index] == "-" and ctx.run.stdin == nil then
    errors.usage(command, "positional argument %d is \"-\", which reads data from"
      .. " stdin, but the run table has no 'stdin' (give it the data to send)", index)
  end
end

-- The positional of each command where "-" means "read from stdin".
local STDIN_POSITIONAL = { import_tar = 2, key_import = 2 }

commands.create = {
  plan = function(args, ctx)
    local plan = new_plan()
    if #args < 2 and not (args.paths_from_stdin or args.paths_from_command
                          or args.content_from_command) then
      errors.usage("create", "no path to back up: give at least one path after the"
        .. " archive, as in borg.create{ \"repo::name\", \"/home\" }")
    end
    for i = 2, #args do
      data_from_stdin("create", args, ctx, i)
    end
    if args.paths_from_stdin and ctx.run.stdin == nil then
      errors.usage("create", "option 'paths_from_stdin' reads the paths from stdin, but"
        .. " the run table has no 'stdin' (give it the paths to back up)")
    end
    if args.list then
      want(plan, "list")
      plan.capture_files = true
    end
    if args.stats or args.json then
      want(plan, "stats")
      args.stats = nil
      -- With --dry-run borg writes no JSON at all, so none is expected.
      if not args.dry_run then
        args.json = true
        plan.stdout = "whole"
      else
        args.json = nil
      end
    end
    return plan
  end,
  result = function(plan, state, ctx)
    local values = { list = state.files }
    if plan.stdout == "whole" then
      values.stats = decode_stdout(ctx, state)
    end
    return shape(plan, values)
  end,
}

commands.list = {
  plan = function(args)
    local plan = new_plan()
    want(plan, "list")
    if args.json or (not args.json_lines and not is_archive(args[1])) then
      args.json = true
      plan.stdout = "whole"
    else
      args.json_lines = true
      plan.stdout = "lines"
      plan.lines = true
    end
    return plan
  end,
  result = function(plan, state, ctx)
    if plan.lines then
      return state.items
    end
    return decode_stdout(ctx, state)
  end,
}

commands.info = {
  plan = function(args)
    local plan = new_plan()
    want(plan, "info")
    args.json = true
    plan.stdout = "whole"
    return plan
  end,
  result = function(_, state, ctx)
    return decode_stdout(ctx, state)
  end,
}

commands.prune = {
  plan = function(args)
    local plan = new_plan()
    if args.list then
      want(plan, "list")
      plan.capture_list = true
    end
    if args.stats then
      want(plan, "stats")
      plan.capture_stats = true
    end
    return plan
  end,
  result = function(plan, state)
    local list = {}
    for i, line in ipairs(state.list_lines) do
      list[i] = parse_prune_line(line)
    end
    return shape(plan, { list = list, stats = parse_stats(state.stats_lines) })
  end,
}

commands.delete = {
  plan = function(args)
    local plan = new_plan()
    if args.stats then
      want(plan, "stats")
      plan.capture_stats = true
    end
    return plan
  end,
  result = function(plan, state)
    return shape(plan, { stats = parse_stats(state.stats_lines) })
  end,
}

commands.compact = {
  plan = function(args, ctx)
    local plan = new_plan()
    if args.verbose or args.info or args.debug or ctx.log_level == "info"
        or ctx.log_level == "debug" then
      want(plan, "log")
      plan.quiet = true -- the records are the result; do not print them too
    end
    return plan
  end,
  result = function(plan, state)
    local records = {}
    for _, record in ipairs(state.log) do
      if record.type == "log_message" then
        records[#records + 1] = record
      end
    end
    return shape(plan, { log = records })
  end,
}

-- Commands that return nothing: borg's exit status is the whole outcome.
local function no_output()
  return {
    plan = function()
      return new_plan()
    end,
    result = function()
      return nil
    end,
  }
end

-- The result of commands without their own rules: borg's stdout as text
-- when it wrote any, else nil.
commands.generic = {
  plan = function(args, ctx)
    local index = STDIN_POSITIONAL[ctx.command]
    if index then
      data_from_stdin(ctx.command, args, ctx, index)
    end
    return { outputs = {}, stdout = "whole" }
  end,
  result = function(_, outcome, ctx)
    check_size(ctx, outcome)
    if outcome.stdout and outcome.stdout ~= "" then
      return outcome.stdout
    end
    return nil
  end,
}

commands.init = no_output()
commands.check = no_output()
commands.rename = no_output()

return commands
