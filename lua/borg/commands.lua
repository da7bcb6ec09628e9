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
        "^(.-)%s+(%a%a%a, %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d[^%[]-) %[(%x+)%]$")
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

commands.parse_prune_line = parse_prune_line

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

-- Plan the outputs of create and import_tar: `list` (file records, with
-- list = true) and `stats` (the --json document, with stats or json).
local function files_and_stats(args, plan)
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
end

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
    return files_and_stats(args, plan)
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

-- The result of a command run outside the 26 of borgapi: borg's stdout
-- as text when it wrote any, else nil.
commands.generic = {
  plan = function()
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
commands.break_lock = no_output()
commands.key_change_passphrase = no_output()
commands.key_migrate_to_repokey = no_output()
-- upgrade prints its progress, and some failures, on stdout: the text is
-- read so that a failure has borg's message, and dropped on success.
commands.upgrade = {
  plan = function()
    local plan = new_plan()
    plan.stdout = "whole"
    return plan
  end,
  result = function()
    return nil
  end,
}
commands.umount = require("borg.mount").umount
commands.mount = require("borg.mount").mount

-- Return borg's whole stdout, the bytes as borg wrote them.
local function stdout_bytes(ctx, state)
  check_size(ctx, state)
  return state.stdout or ""
end

-- Turn the lines borg logs as borg.output.list (one path each, as extract
-- and export_tar print them) into { path } records.
local function path_records(lines)
  local list = {}
  for i, line in ipairs(lines) do
    list[i] = { path = line }
  end
  return list
end

-- Return the definition of a command that lists paths with list = true
-- and writes bytes on stdout when writes_stdout(args) is true; those bytes
-- are the output named bytes_name.
local function paths_and_bytes(bytes_name, writes_stdout)
  return {
    plan = function(args, ctx)
      local plan = new_plan()
      if args.list then
        want(plan, "list")
        plan.capture_list = true
      end
      if writes_stdout(args) and ctx.run.stdout == nil then
        want(plan, bytes_name)
        plan.stdout = "whole"
      end
      return plan
    end,
    result = function(plan, state, ctx)
      local values = { list = path_records(state.list_lines) }
      if plan.stdout == "whole" then
        values[bytes_name] = stdout_bytes(ctx, state)
      end
      return shape(plan, values)
    end,
  }
end

commands.extract = paths_and_bytes("extract", function(args)
  return args.stdout == true
end)

commands.export_tar = paths_and_bytes("tar", function(args)
  return args[2] == "-"
end)

-- import_tar gives the same outputs as create: `list` (file records) and
-- `stats` (the --json document).
commands.import_tar = {
  plan = function(args, ctx)
    data_from_stdin("import_tar", args, ctx, 2)
    return files_and_stats(args, new_plan())
  end,
  result = commands.create.result,
}

-- recreate gives `list` (file records). borg 1.2 logs the statistics of
-- --stats at level info only, so they reach the log, not the result.
commands.recreate = {
  plan = function(args)
    local plan = new_plan()
    if args.list then
      want(plan, "list")
      plan.capture_files = true
    end
    return plan
  end,
  result = function(plan, state)
    return shape(plan, { list = state.files })
  end,
}

commands.diff = {
  plan = function(args)
    local plan = new_plan()
    want(plan, "changes")
    args.json_lines = true
    plan.stdout = "lines"
    return plan
  end,
  result = function(_, state)
    return state.items
  end,
}

-- key_export returns the key text when borg writes it to stdout: with
-- the path "-" or no path.
commands.key_export = {
  plan = function(args, ctx)
    local plan = new_plan()
    if (args[2] == nil or args[2] == "-") and ctx.run.stdout == nil then
      want(plan, "key")
      plan.stdout = "whole"
    end
    return plan
  end,
  result = function(plan, state, ctx)
    return shape(plan, { key = plan.stdout == "whole" and stdout_bytes(ctx, state) })
  end,
}

commands.key_import = {
  plan = function(args, ctx)
    data_from_stdin("key_import", args, ctx, 2)
    if args[2] == nil and not args.paper then
      errors.usage("key_import", "no key file given: give its path, or \"-\" with"
        .. " the key text as the run table's 'stdin'")
    end
    if args.paper then
      errors.usage("key_import", "option 'paper' makes borg ask for the key line"
        .. " by line on a terminal; give the exported key file instead")
    end
    return new_plan()
  end,
  result = function()
    return nil
  end,
}

-- with_lock runs a program while borg holds the repository's lock. The
-- program is given as positionals after the repository, or as one array:
-- borg.with_lock{ repo, { "rsync", "-a", repo, "/mnt/copy" } }. Its
-- stdout is the host's own stdout, and what it writes on stderr reaches
-- the host's stderr (borg passes its own stderr, read by the host, on).
commands.with_lock = {
  normalize = function(args)
    local program = args[2]
    if type(program) == "table" and getmetatable(program) == nil then
      if args[3] ~= nil then
        errors.usage("with_lock", "give the program either as one array or as"
          .. " positionals after the repository, not both")
      end
      if #program == 0 then
        errors.usage("with_lock", "the program's argv array is empty: give the"
          .. " program and its arguments, as in { \"sh\", \"-c\", \"...\" }")
      end
      for i = 1, #program do
        args[i + 1] = program[i]
      end
    end
  end,
  plan = function()
    local plan = new_plan()
    plan.stdout = "inherit"
    plan.echo_text = true
    return plan
  end,
  result = function()
    return nil
  end,
}

-- serve speaks borg's protocol on the host's own stdin and stdout, so
-- that `borglua -e 'borg.serve{ ... }'` can be the command of an
-- authorized_keys entry. Its log goes to the client unchanged too.
commands.serve = {
  plan = function()
    local plan = new_plan()
    plan.stdio = "inherit"
    plan.plain_log = true
    plan.quiet = true
    return plan
  end,
  result = function()
    return nil
  end,
}

-- Size units of borg's benchmark lines (format_file_size), in bytes.
local function parse_size(text)
  local number, unit = text:match("^(%-?[%d.]+) (%a+)$")
  local scale = unit and UNITS[unit]
  if scale == nil or tonumber(number) == nil then
    return nil
  end
  return math.floor(tonumber(number) * scale + 0.5)
end

local OPERATIONS = { C = "create", R = "extract", U = "update", D = "delete" }

-- Parse one line of `benchmark crud`, such as
-- "C-Z-TEST         0.00 MB/s (1 * 1 B all-zero files: 0.38s)".
local function parse_benchmark_line(line)
  local op, name, speed, count, size, content, seconds = line:match(
    "^(%u)%-(%S+)%s+([%d.]+) MB/s %((%d+) %* (.-) (%S+) files: ([%d.]+)s%)$")
  if op == nil then
    return nil
  end
  return {
    operation = OPERATIONS[op] or op,
    code = op,
    test = name,
    count = math.tointeger(tonumber(count)),
    size = parse_size(size),
    content = content,
    speed = tonumber(speed) * 1e6,
    seconds = tonumber(seconds),
  }
end

commands.benchmark_crud = {
  plan = function()
    local plan = new_plan()
    want(plan, "rows")
    plan.stdout = "whole"
    return plan
  end,
  result = function(_, state, ctx)
    local rows = {}
    for line in stdout_bytes(ctx, state):gmatch("[^\n]+") do
      local row = parse_benchmark_line(line)
      if row == nil then
        decode_error(ctx, state, "benchmark line", string.format("%q", line))
      end
      rows[#rows + 1] = row
    end
    return rows
  end,
}

-- Parse the text of `config --list` into { section = { name = value } }.
local function parse_config_list(text)
  local sections, current = {}, nil
  for line in text:gmatch("[^\n]+") do
    local section = line:match("^%[(.-)%]%s*$")
    if section then
      current = {}
      sections[section] = current
    else
      local name, value = line:match("^([^=]-)%s*=%s?(.*)$")
      if name and current then
        current[name] = value
      end
    end
  end
  return sections
end

-- config takes several changes: after the repository, a name reads a
-- setting, { name, value } sets it (with delete = true, a name deletes
-- it). borg's config runs once per change, in the order given. A name
-- that is not set reads as false (borg warns and exits with 1).
commands.config = {
  normalize = function(args, ctx)
    local changes = {}
    local n = 0
    for key in pairs(args) do
      if math.type(key) == "integer" and key > n then
        n = key
      end
    end
    for i = 2, n do
      local change = args[i]
      local name, value
      if type(change) == "string" then
        name = change
      elseif type(change) == "table" and getmetatable(change) == nil then
        name, value = change[1], change[2]
        if type(name) ~= "string" or (type(value) ~= "string"
            and math.type(value) ~= "integer") or change[3] ~= nil then
          errors.usage("config", "change %d must be a name or { name, value } with a"
            .. " string or integer value, got a table that is neither", i - 1)
        end
        if args.delete then
          errors.usage("config", "change %d sets a value, but delete = true deletes"
            .. " settings: give only names", i - 1)
        end
      else
        errors.usage("config", "change %d must be a name (to read it) or { name,"
          .. " value } (to set it), got %s", i - 1, errors.describe(change))
      end
      changes[#changes + 1] = { name = name, value = value }
      args[i] = nil
    end
    if #changes == 0 and not args.list then
      errors.usage("config", "no change given: after the repository give a name to"
        .. " read, { name, value } to set, or list = true, as in"
        .. " borg.config{ repo, \"append_only\", { \"storage_quota\", \"5G\" } }")
    end
    ctx.changes = changes
  end,
  plan = function(args, ctx)
    local plan = new_plan()
    plan.steps, plan.kinds = {}, {}
    local reads = false
    for _, change in ipairs(ctx.changes) do
      local step = {}
      for key, value in pairs(args) do
        step[key] = value
      end
      step.list = nil
      step[2], step[3] = change.name, change.value
      plan.steps[#plan.steps + 1] = step
      local reading = change.value == nil and not args.delete
      plan.kinds[#plan.steps] = reading and "read" or "change"
      reads = reads or reading
    end
    if args.list then
      want(plan, "list")
      local step = {}
      for key, value in pairs(args) do
        step[key] = value
      end
      plan.steps[#plan.steps + 1] = step
      plan.kinds[#plan.steps] = "list"
    end
    if reads then
      want(plan, "changes")
    end
    plan.stdout = "whole"
    return plan
  end,
  result = function(plan, state, ctx)
    local values = { changes = {} }
    for i, step in ipairs(state.steps) do
      local kind = plan.kinds[i]
      if kind == "read" then
        local text = step.rc == 0 and stdout_bytes(ctx, step):gsub("\n$", "")
        values.changes[#values.changes + 1] = text
      elseif kind == "list" then
        values.list = parse_config_list(stdout_bytes(ctx, step))
      end
    end
    return shape(plan, values)
  end,
}

return commands
