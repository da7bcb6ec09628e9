-- The borg library: one function per borg command, instances with their
-- own defaults and environment, and the version probe.
--
--   local borg = require "borg"
--   local stats, run = borg.create({ "/srv/repo::{now}", "/etc", json = true },
--                                  { timeout = 3600 })
--
-- A call returns result, run. Misuse raises a "usage" error before borg
-- starts; a failed borg raises an error object (see borg.errors).

local argv = require "borg.argv"
local catalogue = require "borg.catalogue"
local commands = require "borg.commands"
local core = require "borg.core"
local env = require "borg.env"
local errors = require "borg.errors"
local format = require "borg.format"
local json = require "borg.json"
local process = require "borg.process"

local borg = {}
borg._VERSION = "borglua 0.1.0"

-- borgapi's command names. Each has an entry of the same name in the catalogue.
local COMMAND_NAMES = {
  "benchmark_crud", "break_lock", "check", "compact", "config", "create",
  "delete", "diff", "export_tar", "extract", "import_tar", "info", "init",
  "key_change_passphrase", "key_export", "key_import",
  "key_migrate_to_repokey", "list", "mount", "prune", "recreate", "rename",
  "serve", "umount", "upgrade", "with_lock",
}
local IS_COMMAND = {}
for _, name in ipairs(COMMAND_NAMES) do
  IS_COMMAND[name] = true
end

local LOG_LEVELS = { debug = true, info = true, warning = true, error = true,
                     critical = true }

-- Keys of the first table that configure the library, not borg.
local LIBRARY_KEYS = { log_level = true, log_json = true }

-- Keys of the second table (how to run the command).
local RUN_KEYS = { "cwd", "env", "on_file", "on_log", "on_progress", "stdin",
                   "timeout" }
local IS_RUN_KEY = {}
for _, name in ipairs(RUN_KEYS) do
  IS_RUN_KEY[name] = true
end

local INSTANCE_KEYS = { "borg", "defaults", "env", "log_json", "log_level",
                        "options" }

local state = { warned = false }

-- Return true when some call of this process ended with borg's warning
-- status (rc 1). The borglua program exits with 1 in that case.
function borg.warned()
  return state.warned
end

local describe_type = errors.describe

local function check_run(command, run)
  if run == nil then
    return {}
  end
  if type(run) ~= "table" then
    errors.usage(command, "the second argument (how to run) must be a table, got %s",
      describe_type(run))
  end
  for key, value in pairs(run) do
    if not IS_RUN_KEY[key] then
      local guess = type(key) == "string" and errors.nearest(key, RUN_KEYS)
      errors.usage(command, "unknown run option '%s'%s", tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or
        " (known: " .. table.concat(RUN_KEYS, ", ") .. ")")
    end
    if key:find("^on_") and type(value) ~= "function" then
      errors.usage(command, "run option '%s' must be a function, got %s", key,
        describe_type(value))
    end
  end
  if run.timeout ~= nil and (type(run.timeout) ~= "number" or run.timeout <= 0) then
    errors.usage(command, "run option 'timeout' must be a positive number of"
      .. " seconds, got %s", describe_type(run.timeout))
  end
  if run.cwd ~= nil and type(run.cwd) ~= "string" then
    errors.usage(command, "run option 'cwd' must be a string, got %s",
      describe_type(run.cwd))
  end
  if run.stdin ~= nil and type(run.stdin) ~= "string" then
    -- NOTE: file handles and chunk functions as stdin are not supported yet.
    errors.usage(command, "run option 'stdin' must be a string, got %s",
      describe_type(run.stdin))
  end
  return run
end

-- Merge the instance's options and defaults with the call's arguments:
-- options (only those the command accepts) < defaults[command] < call.
-- A call value of false removes an inherited flag.
local function merge(inst, command, spec, args)
  local merged = {}
  merged.log_json = inst.log_json
  for name, value in pairs(inst.options) do
    if spec.options[name] or LIBRARY_KEYS[name] then
      merged[name] = value
    end
  end
  for name, value in pairs(inst.defaults[command] or {}) do
    merged[name] = value
  end
  for key, value in pairs(args) do
    merged[key] = value
  end
  for key, value in pairs(args) do
    if value == false and type(key) == "string" then
      merged[key] = nil
    end
  end
  if command == "init" and merged.encryption == nil then
    merged.encryption = "repokey"
  end
  return merged
end

-- Print one of borg's log records on the host's stderr, as a JSON line
-- when as_json is true.
local function printer(command, as_json)
  return function(record)
    if as_json then
      io.stderr:write(json.encode(record), "\n")
    else
      local message = tostring(record.message):gsub("^%s+", ""):gsub("%s+$", "")
      io.stderr:write(string.format("borg %s: %s: %s\n", command,
        tostring(record.levelname or "info"):lower(), message))
    end
  end
end

-- Return the message of a failed run: borg's last error record, or its
-- last plain stderr line.
local function failure_message(outcome)
  local record = outcome.errors[#outcome.errors]
  local message = record and record.message or outcome.stderr[#outcome.stderr]
  if message == nil then
    return nil, nil
  end
  message = message:match("^[^\n]*"):gsub("%.$", "")
  if message:find("^%u%l") then
    message = message:sub(1, 1):lower() .. message:sub(2)
  end
  return message, record and record.msgid
end

local function fail(fields, outcome, ctx)
  fields.command = ctx.command
  fields.argv = ctx.argv
  fields.stderr = table.concat(outcome.stderr, "\n")
  fields.log = outcome.log
  error(errors.new(fields), 0)
end

-- Raise the error object for an outcome that is not a success.
local function judge(outcome, ctx)
  local interrupted = outcome.interrupted
  if interrupted then
    fail({ kind = "signal", signal = interrupted, rc = outcome.rc,
           message = string.format("interrupted by %s; borg was stopped",
             process.signal_name(interrupted)) }, outcome, ctx)
  end
  if outcome.timed_out then
    fail({ kind = "timeout", signal = outcome.signal ~= 0 and outcome.signal or nil,
           message = string.format("timed out after %g s; borg was stopped",
             ctx.timeout) }, outcome, ctx)
  end
  if outcome.signal ~= 0 then
    fail({ kind = "signal", signal = outcome.signal,
           message = string.format("borg was killed by %s",
             process.signal_name(outcome.signal)) }, outcome, ctx)
  end
  local rc = outcome.rc
  if rc == 0 or (rc == 1 and ctx.command ~= "check") then
    return
  end
  local message, msgid = failure_message(outcome)
  local kind = "borg"
  if msgid == "NoPassphraseFailure" then
    kind = "prompt"
    message = "borg needs a passphrase and cannot ask for one: set BORG_PASSPHRASE"
      .. " or BORG_PASSCOMMAND in the instance's or the call's env"
  elseif rc == 1 then
    message = message or "check found problems in the repository"
  end
  fail({ kind = kind, rc = rc, msgid = msgid,
         message = message or string.format("borg exited with status %d", rc) },
       outcome, ctx)
end

local function new_run(outcome, ctx)
  return {
    argv = ctx.argv,
    command = ctx.command,
    rc = outcome.rc,
    status = outcome.rc == 1 and "warning" or "ok",
    warnings = outcome.warnings,
    log = outcome.log,
    duration = outcome.duration,
  }
end

-- Run command on instance inst with the call's args and run tables.
local function call(inst, command, args, run)
  if type(args) ~= "table" then
    errors.usage(command, "expected a table of arguments, got %s (call it as"
      .. " borg.%s{ ... })", args == nil and "no value" or describe_type(args),
      command)
  end
  local spec = catalogue.commands[command]
  run = check_run(command, run)
  local call_env = env.check(command, run.env, "run option 'env'")
  local merged = merge(inst, command, spec, args)
  if merged.log_json ~= nil and type(merged.log_json) ~= "boolean" then
    errors.usage(command, "log_json must be true or false, got %s",
      describe_type(merged.log_json))
  end
  local level = merged.log_level or inst.log_level
  if not LOG_LEVELS[level] then
    errors.usage(command, "log_level must be one of debug, info, warning, error,"
      .. " critical, got %s", describe_type(level))
  end
  local vars = env.apply(env.apply(env.host(), inst.env), call_env)
  -- Check the caller's arguments before the plan adds its own.
  argv.build(command, spec, merged, {}, LIBRARY_KEYS)
  local ctx = { command = command, run = run, log_level = level,
                timeout = run.timeout }
  local definition = commands[command] or commands.generic
  local plan = definition.plan(merged, ctx)
  local extra = { "--log-json" }
  if level ~= "warning" then
    extra[2] = "--" .. level
  end
  local words = argv.build(command, spec, merged, extra, LIBRARY_KEYS)
  local full = { inst.program }
  table.move(words, 1, #words, 2, full)
  ctx.argv = full

  local items = plan.lines and {} or nil
  local outcome = process.run {
    command = command,
    argv = full,
    masked_argv = full,
    env = env.list(vars),
    cwd = run.cwd,
    stdin = run.stdin,
    timeout = run.timeout,
    stdout = plan.stdout,
    on_line = function(line, truncated)
      local item, err = json.decode(line)
      if item == nil or truncated then
        error(errors.new {
          kind = "decode", command = command, argv = full,
          message = "borg's output line is not valid JSON: "
            .. (truncated and "the line is too long" or err),
        }, 0)
      end
      items[#items + 1] = item
    end,
    on_log = run.on_log,
    on_file = run.on_file,
    on_progress = run.on_progress,
    print_log = not plan.quiet and printer(command, merged.log_json == true) or nil,
    capture_files = plan.capture_files,
    capture_list = plan.capture_list,
    capture_stats = plan.capture_stats,
  }
  outcome.items = items
  judge(outcome, ctx)
  if outcome.rc == 1 then
    state.warned = true
  end
  return definition.result(plan, outcome, ctx), new_run(outcome, ctx)
end

-- The result of commands without their own rules: borg's stdout as text
-- when it wrote any, else nil.
commands.generic = {
  plan = function()
    return { outputs = {}, stdout = "whole" }
  end,
  result = function(_, outcome)
    if outcome.stdout and outcome.stdout ~= "" then
      return outcome.stdout
    end
    return nil
  end,
}

local versions = {} -- program -> version table, probed once per process

-- Return the version of program as { major, minor, patch, string }.
local function probe_version(program)
  if versions[program] then
    return versions[program]
  end
  local proc, errname, message = core.spawn {
    file = program, args = { program, "--version" }, env = env.list(env.host()),
    stdout = "whole", timeout = 60,
  }
  if proc == nil then
    error(errors.new { kind = "spawn", command = "version",
      message = string.format("cannot run '%s': %s (%s)", program, message, errname) }, 0)
  end
  local text, rc = "", nil
  repeat
    local kind, data = proc:read(true)
    if kind == "stdout" then
      text = data
    elseif kind == "exit" then
      rc = data
    end
  until kind == "exit"
  local major, minor, patch, rest = text:match("(%d+)%.(%d+)%.(%d+)(%S*)")
  if rc ~= 0 or major == nil then
    error(errors.new { kind = "borg", command = "version", rc = rc,
      message = string.format("'%s --version' printed no version: %q", program,
        text:sub(1, 200)) }, 0)
  end
  local version = {
    major = tonumber(major), minor = tonumber(minor), patch = tonumber(patch),
    string = major .. "." .. minor .. "." .. patch .. rest,
    program = program,
  }
  versions[program] = version
  return version
end

local Instance = {}

-- Return the function for command `name` bound to inst; it accepts both
-- inst:name{...} and inst.name{...}.
local function bound(inst, name)
  return function(first, ...)
    if first == inst then
      return call(inst, name, ...)
    end
    return call(inst, name, first, ...)
  end
end

Instance.__index = function(inst, name)
  if IS_COMMAND[name] then
    local fn = bound(inst, name)
    rawset(inst, name, fn)
    return fn
  end
  if name == "version" then
    return function()
      return probe_version(inst.program)
    end
  end
  if type(name) == "string" and not name:find("^_") then
    local guess = errors.nearest(name, COMMAND_NAMES)
    errors.usage(nil, "unknown command '%s'%s", name,
      guess and string.format(" (did you mean '%s'?)", guess) or "")
  end
  return nil
end

local function check_instance(config)
  if config == nil then
    return {}
  end
  if type(config) ~= "table" then
    errors.usage("new", "expected a table of settings, got %s", describe_type(config))
  end
  for key in pairs(config) do
    local known = false
    for _, name in ipairs(INSTANCE_KEYS) do
      known = known or name == key
    end
    if not known then
      local guess = type(key) == "string" and errors.nearest(key, INSTANCE_KEYS)
      errors.usage("new", "unknown setting '%s'%s", tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or
        " (known: " .. table.concat(INSTANCE_KEYS, ", ") .. ")")
    end
  end
  for _, key in ipairs { "defaults", "options" } do
    if config[key] ~= nil and type(config[key]) ~= "table" then
      errors.usage("new", "setting '%s' must be a table, got %s", key,
        describe_type(config[key]))
    end
  end
  if config.borg ~= nil and type(config.borg) ~= "string" then
    errors.usage("new", "setting 'borg' must be the program to run, got %s",
      describe_type(config.borg))
  end
  if config.log_level ~= nil and not LOG_LEVELS[config.log_level] then
    errors.usage("new", "log_level must be one of debug, info, warning, error,"
      .. " critical, got %s", describe_type(config.log_level))
  end
  for command, values in pairs(config.defaults or {}) do
    if not IS_COMMAND[command] then
      local guess = errors.nearest(tostring(command), COMMAND_NAMES)
      errors.usage("new", "defaults for unknown command '%s'%s", tostring(command),
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
    if type(values) ~= "table" then
      errors.usage("new", "defaults.%s must be a table, got %s", command,
        describe_type(values))
    end
  end
  return config
end

-- Return a new instance: its own program, defaults per command, options
-- for every command that accepts them, log level and environment.
function borg.new(config)
  config = check_instance(config)
  local inst = {
    program = config.borg or "borg",
    defaults = config.defaults or {},
    options = config.options or {},
    log_level = config.log_level or "warning",
    log_json = config.log_json == true,
    env = env.check("new", config.env, "setting 'env'"),
  }
  return setmetatable(inst, Instance)
end

-- Return the sorted option names that command accepts.
function borg.options(command)
  local spec = catalogue.commands[command]
  if not IS_COMMAND[command] or spec == nil then
    errors.usage("options", "unknown command '%s'", tostring(command))
  end
  local names = {}
  for name in pairs(spec.options) do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

borg.commands = COMMAND_NAMES
borg.format = format
borg.errors = errors
borg.is_error = errors.is

local default = borg.new()

-- Return the version of the default instance's borg program.
function borg.version()
  return probe_version(default.program)
end

return setmetatable(borg, {
  __index = function(module, name)
    if IS_COMMAND[name] then
      local fn = function(first, ...)
        if first == module then
          return call(default, name, ...)
        end
        return call(default, name, first, ...)
      end
      rawset(module, name, fn)
      return fn
    end
    return default[name]
  end,
})
