-- One call of a borg command: checking the arguments, merging them with
-- the instance's settings, running borg, and judging the outcome.
--
-- Raises a "usage" error before borg starts when the call is wrong, and an
-- error object of another kind when borg fails (see borg.errors).

local argv = require "borg.argv"
local borg2 = require "borg.borg2"
local commands = require "borg.commands"
local env = require "borg.env"
local errors = require "borg.errors"
local exitcodes = require "borg.exitcodes"
local json = require "borg.json"
local location = require "borg.location"
local plan = require "borg.plan"
local process = require "borg.process"
local prompt = require "borg.prompt"
local scheduler = require "borg.scheduler"
local stream = require "borg.stream"

local call = {}

call.LOG_LEVELS = { debug = true, info = true, warning = true, error = true,
                    critical = true }

-- Keys of the first table that configure the library, not borg.
local LIBRARY_KEYS = { log_level = true, log_json = true }
call.LIBRARY_KEYS = LIBRARY_KEYS

-- Keys of the second table (how to run the command).
local RUN_KEYS = argv.RUN_KEYS
call.RUN_KEYS = RUN_KEYS
local IS_RUN_KEY = {}
for _, name in ipairs(RUN_KEYS) do
  IS_RUN_KEY[name] = true
end

-- Bytes of stdout kept when a command's output is read whole.
call.MAX_STDOUT = 256 * 1024 * 1024

local state = { warned = false }

-- Switches of the whole host, read and set through the borg module:
-- planning (describe calls instead of running them, `borglua --plan`) and
-- dry_run (pass --dry-run to every command that has it).
call.settings = { planning = false, dry_run = false }

-- Observers called after every call that ran or failed (see call.observe).
local observers = {}

-- Return true when some call of this process ended with borg's warning
-- status (rc 1).
function call.warned()
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
  local timeout = run.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout
                         or timeout <= 0) then
    errors.usage(command, "run option 'timeout' must be a positive number of"
      .. " seconds, got %s", describe_type(run.timeout))
  end
  if run.cwd ~= nil and type(run.cwd) ~= "string" then
    errors.usage(command, "run option 'cwd' must be a string, got %s",
      describe_type(run.cwd))
  end
  if run.cwd ~= nil and run.cwd:find("\0", 1, true) then
    errors.usage(command, "run option 'cwd' contains a NUL byte")
  end
  if run.cwd ~= nil then
    -- Opening "dir/." fails unless dir is a directory that exists.
    local handle = io.open(run.cwd .. "/.", "r")
    if handle == nil then
      errors.usage(command, "run option 'cwd' is not an existing directory: %s",
        describe_type(run.cwd))
    end
    handle:close()
  end
  if run.stdin ~= nil then
    stream.check_source(command, run.stdin)
  end
  if run.stdout ~= nil then
    stream.check_sink(command, run.stdout)
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
  if call.settings.dry_run and spec.options.dry_run and args.dry_run == nil then
    merged.dry_run = true
  end
  if command == "init" and merged.encryption == nil then
    merged.encryption = "repokey"
  end
  return merged
end

local function check_levels(command, merged, inst)
  if merged.log_json ~= nil and type(merged.log_json) ~= "boolean" then
    errors.usage(command, "log_json must be true or false, got %s",
      describe_type(merged.log_json))
  end
  local level = merged.log_level or inst.log_level
  if not call.LOG_LEVELS[level] then
    errors.usage(command, "log_level must be one of debug, info, warning, error,"
      .. " critical, got %s", describe_type(level))
  end
  return level
end

-- Check the call and return its context: the merged arguments, the plan
-- of its outputs, the argument vector and the environment. Runs nothing.
-- iterate, for borg.iter, sets arguments of its own ({ name = value })
-- and stdout_lines.
function call.prepare(inst, command, args, run, iterate)
  process.check_interrupted(command)
  if type(args) ~= "table" then
    errors.usage(command, "expected a table of arguments, got %s (call it as"
      .. " borg.%s{ ... })", args == nil and "no value" or describe_type(args),
      command)
  end
  run = check_run(command, run)
  local call_env = env.check(command, run.env, "run option 'env'")
  -- The layer speaks the command line of the instance's borg version.
  local layer = borg2.layer(inst, command, args)
  local merged = merge(inst, command, layer.spec, args)
  stream.adjust_args(layer.spec, merged, run, iterate)
  local level = check_levels(command, merged, inst)
  local ctx = { command = command, run = run, log_level = level,
                max_stdout = call.MAX_STDOUT, inst = inst,
                timeout = run.timeout, merged = merged, warm = inst.warm,
                definition = commands[command] or commands.generic,
                layer = layer }
  -- Some commands take arguments that are not borg's own (config's
  -- changes, with_lock's argv array); normalize turns them into borg's.
  if ctx.definition.normalize then
    ctx.definition.normalize(merged, ctx)
  end
  -- Check the caller's arguments before the plan adds its own.
  layer:build(merged, {}, LIBRARY_KEYS)

  ctx.plan = ctx.definition.plan(merged, ctx)
  stream.adjust_plan(ctx, iterate)
  -- Above warning, borg would hide the WARNING records that fill
  -- run.warnings and the ERROR record that carries the msgid of a
  -- failure, so borg runs at --warning and the host hides what is below
  -- the requested level.
  local extra = {}
  if not ctx.plan.plain_log then
    extra[1] = "--log-json"
  end
  if level == "debug" or level == "info" then
    extra[#extra + 1] = "--" .. level
  end
  -- A plan with steps runs borg once per step, each with its own
  -- arguments; any other runs it once with the merged arguments.
  ctx.argvs = {}
  for i, step in ipairs(ctx.plan.steps or { merged }) do
    local words = layer:build(step, extra, LIBRARY_KEYS)
    ctx.argvs[i] = { inst.program }
    table.move(words, 1, #words, 2, ctx.argvs[i])
  end
  ctx.argv = ctx.argvs[1]
  local child = env.child(inst, command, call_env)
  prompt.set_answers(child.vars, command, run)
  if child.stdin and run.stdin ~= nil then
    errors.usage(command, "run option 'stdin' cannot be used: borg reads the"
      .. " passphrases from stdin")
  end
  prompt.check(command, run, child.stdin ~= nil)
  ctx.env = env.list(child.vars)
  ctx.fds, ctx.stdin, ctx.secrets = child.fds, child.stdin, child.secrets
  ctx.passphrase_origin = child.passphrase_origin
  ctx.new_passphrase = child.new_passphrase
  return ctx
end

-- Print one of borg's log records on the host's stderr, as a JSON line
-- when as_json is true.
local function printer(command, as_json, level, secrets)
  return function(record)
    if (level == "critical" and record.levelname ~= "CRITICAL")
        or (level == "error" and record.levelname == "WARNING") then
      return
    end
    if as_json then
      io.stderr:write(env.mask_text(json.encode(record), secrets), "\n")
    else
      local message = env.mask_text(tostring(record.message), secrets)
        :gsub("^%s+", ""):gsub("%s+$", "")
      io.stderr:write(string.format("borg %s: %s: %s\n", command,
        tostring(record.levelname or "info"):lower(), message))
    end
  end
end

-- Return a function that decodes one JSON line of borg's stdout and
-- hands the item to emit.
local function line_decoder(ctx, emit)
  return function(line, truncated)
    local item, err = json.decode(line)
    if item == nil or truncated then
      error(errors.new {
        kind = "decode", command = ctx.command, argv = ctx.argv,
        message = "borg's output line is not valid JSON: "
          .. (truncated and "the line is too long" or err),
      }, 0)
    end
    emit(item)
  end
end

-- Return the job that process.run executes for ctx.
-- Return the job that process.run executes for ctx. emit receives each
-- item of a line-by-line output; on_list, when given, receives the list
-- records (file status records and borg's list output lines).
function call.job(ctx, emit, on_list)
  local run, plan = ctx.run, ctx.plan
  local job = {
    command = ctx.command,
    argv = ctx.argv,
    masked_argv = ctx.argv,
    env = ctx.env,
    warm = ctx.warm,
    log_level = ctx.log_level,
    cwd = run.cwd,
    stdin = ctx.stdin and stream.source(ctx.command, ctx.stdin),
    stdio = plan.stdio,
    fds = ctx.fds,
    timeout = run.timeout,
    stdout = plan.stdout,
    max_stdout = ctx.max_stdout,
    on_line = line_decoder(ctx, emit),
    on_log = run.on_log,
    on_file = run.on_file,
    on_progress = run.on_progress,
    print_log = not plan.quiet
      and printer(ctx.command, ctx.merged.log_json == true, ctx.log_level, ctx.secrets)
      or nil,
    echo_text = plan.echo_text,
    secrets = ctx.secrets,
    capture_files = plan.capture_files,
    capture_list = plan.capture_list,
    capture_stats = plan.capture_stats,
    on_list = on_list,
  }
  stream.attach(job, ctx)
  prompt.attach(job, ctx)
  return job
end

-- Return the line of a Python traceback that names the exception: the
-- last line before borg's system information block.
local function exception_line(traceback)
  local body = traceback:match("^(.-)\n\nPlatform:") or traceback
  local last
  for line in body:gmatch("[^\n]+") do
    if line:find("%S") then
      last = line
    end
  end
  return last
end

-- Return the message and the msgid of a failed run: borg's last error
-- record, or the error that borg's argument parser printed, or its last
-- plain stderr line. The third value is true for a parser error.
-- Return the last value of fn(item) that is not nil, walking list from
-- its end.
local function last_match(list, fn)
  for i = #list, 1, -1 do
    local value = fn(list[i])
    if value ~= nil then
      return value
    end
  end
  return nil
end

local function msgid_of(record)
  return record.msgid
end

local function parser_error_of(line)
  return line:match("^borg[%w%-]* [%w%- ]*: error: (.+)$")
end

local function failure_message(outcome)
  local record = outcome.errors[#outcome.errors]
  local msgid = last_match(outcome.errors, msgid_of) or exitcodes.msgid(outcome.rc)
  local message = record and record.message
  local used = record
  if message and message:find("^Traceback") then
    message = "borg crashed: " .. (exception_line(message) or "an internal error")
    used = nil -- the whole traceback is still printed, for a bug report
  end
  local parser_error
  if message == nil then
    parser_error = last_match(outcome.stderr, parser_error_of)
    message = parser_error or outcome.stderr[#outcome.stderr]
  end
  if message == nil and outcome.stdout then
    -- A few commands (upgrade) print their failure on stdout.
    message = outcome.stdout:match("([^\n]*%S[^\n]*)\n?%s*$")
  end
  if message == nil then
    return nil, msgid
  end
  message = message:match("^[^\n]*"):gsub("%.$", "")
  if message:find("^%u%l") then
    message = message:sub(1, 1):lower() .. message:sub(2)
  end
  return message, msgid, parser_error ~= nil, parser_error == nil and used or nil
end

-- Raise the error object made of fields for the outcome of ctx. The log
-- record `used` carries the error's message, so it is not printed.
local function fail(fields, outcome, ctx, used)
  process.release_held(outcome, used)
  fields.command = ctx.command
  fields.argv = ctx.argv
  fields.stderr = env.mask_text(table.concat(outcome.stderr, "\n"), ctx.secrets)
  fields.message = env.mask_text(fields.message, ctx.secrets)
  fields.log = outcome.log
  error(errors.new(fields), 0)
end

-- Raise the error object for an outcome that is not a success.
local function judge(outcome, ctx)
  local interrupted = outcome.interrupted
  if interrupted then
    local stopped = "borg was stopped"
    if outcome.signal == 9 then
      stopped = "borg did not stop in time and was killed (SIGKILL); its lock,"
        .. " if any, is removed by the next borg call on this host"
    end
    fail({ kind = "signal", interrupted = interrupted,
           signal = outcome.signal ~= 0 and outcome.signal or interrupted,
           rc = outcome.signal == 0 and outcome.rc or nil,
           message = string.format("interrupted by %s; %s",
             process.signal_name(interrupted), stopped) }, outcome, ctx)
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
  local severity = exitcodes.severity(rc)
  if severity == "ok" or (severity == "warning" and ctx.command ~= "check") then
    process.release_held(outcome)
    return
  end
  local message, msgid, parser_error, used = failure_message(outcome)
  local kind = "borg"
  local prompt_fields = not parser_error and prompt.failure(outcome, ctx, msgid)
  if prompt_fields then
    prompt_fields.rc = rc
    fail(prompt_fields, outcome, ctx)
  end
  if ctx.stdin and msgid == "PasswordRetriesExceeded" then
    -- The current passphrase went to borg's prompt, which tries it (and
    -- the lines after it) and then gives up instead of PassphraseWrong.
    msgid = "PassphraseWrong"
    message = "the current passphrase is wrong"
  end
  local where
  if parser_error then
    kind = "usage"
    message = "borg rejected the arguments: " .. message
    where = errors.caller_position()
    if message:find("No archive specified", 1, true) then
      message = message .. "; the archive goes first, as REPOSITORY::ARCHIVE"
    end
  elseif severity == "warning" then
    message = message or "check found problems in the repository"
  end
  local hint = msgid and errors.HINTS[msgid]
  if msgid == "PassphraseWrong" and ctx.passphrase_origin then
    hint = "The passphrase came from " .. ctx.passphrase_origin .. ". " .. hint
  end
  fail({ kind = kind, rc = rc, msgid = msgid, hint = hint, where = where,
         message = message or string.format("borg exited with status %d", rc) },
       outcome, ctx, used)
end

local function new_run(outcome, ctx)
  return {
    argv = ctx.argv,
    command = ctx.command,
    rc = outcome.rc,
    status = exitcodes.severity(outcome.rc),
    warnings = outcome.warnings,
    log = outcome.log,
    duration = outcome.duration,
    answers = ctx.answers,
  }
end

-- Return a value to close that holds the repository of the call ctx
-- while it runs: inside borg.parallel, a call waits while another
-- function's call runs on the same repository.
function call.hold(ctx)
  return scheduler.hold(scheduler.in_task()
    and location.of_call(ctx.layer.spec, ctx.merged, ctx.env, ctx.run.cwd))
end

-- Raise the error object for an outcome that failed, and note borg's
-- warning status.
local function judge_step(outcome, ctx)
  judge(outcome, ctx)
  if exitcodes.severity(outcome.rc) == "warning" then
    state.warned = true
  end
end

-- Return the result and the run table of the call ctx from the outcome
-- of its last run of borg, all its steps, and their total duration.
function call.result(ctx, outcome, steps, duration)
  outcome.steps = steps
  local raw = ctx.definition.result(ctx.plan, outcome, ctx)
  local info = new_run(outcome, ctx)
  info.duration = duration
  info.stdin_bytes, info.stdout_bytes = outcome.stdin_bytes, outcome.stdout_bytes
  for _, step in ipairs(steps) do
    if step.rc > info.rc then
      -- One step's warning is the warning of the whole call.
      info.rc, info.status = step.rc, "warning"
    end
  end
  -- borg's own documents, before the shared schema. They are reached
  -- through the metatable, so printing the run table does not show the
  -- whole result twice.
  setmetatable(info, { __index = { raw = raw } })
  return borg2.normalize(ctx.command, ctx.plan, raw), info
end

-- Commands that change a repository (or run a command while holding its
-- lock) and have no --dry-run of their own: with borg.dry_run they do not
-- run at all. check and config change a repository only with some options.
local CHANGES_WITHOUT_DRY_RUN = {
  benchmark_crud = true, break_lock = true, compact = true, import_tar = true,
  init = true, key_change_location = true, key_change_passphrase = true,
  key_import = true, key_migrate_to_repokey = true, rcompress = true,
  rename = true, with_lock = true,
}

-- Return true when borg.dry_run keeps the call of ctx from running.
function call.skipped_by_dry_run(ctx)
  if not call.settings.dry_run or ctx.merged.dry_run then
    return false
  end
  local command, merged = ctx.command, ctx.merged
  if command == "check" then
    return merged.repair == true
  elseif command == "config" then
    return merged[3] ~= nil or merged.delete == true
  end
  return CHANGES_WITHOUT_DRY_RUN[command] == true
end

-- Print what ctx would run (each argv of a plan with steps) and return
-- the placeholders of plan mode.
local function planned(ctx)
  local lines = {}
  for _, argv in ipairs(ctx.argvs or { ctx.argv }) do
    local notes = {}
    for fd in pairs(ctx.fds or {}) do
      notes[#notes + 1] = string.format("fd %d: the passphrase (%s)", fd, env.MASK)
    end
    local described = plan.describe {
      argv = argv, cwd = ctx.run.cwd, notes = notes,
      changes = call.settings.planning and plan.env_changes(env.host(), ctx.env) or {},
    }
    table.move(described, 1, #described, #lines + 1, lines)
  end
  if call.settings.planning then
    io.stdout:write(table.concat(lines, "\n"), "\n")
    io.stdout:flush()
  else
    io.stderr:write(string.format("borglua: borg %s: not run, because borg.dry_run"
      .. " is on and %s has no --dry-run:\n", ctx.command, ctx.command),
      table.concat(lines, "\n"), "\n")
  end
  return plan.placeholder(ctx.command), {
    argv = ctx.argv, command = ctx.command, rc = 0, status = "planned",
    warnings = {}, log = {}, duration = 0, planned = true,
  }
end

call.planned = planned

-- Return the repository a call works on: the part of its first positional
-- before "::", or BORG_REPO of its environment.
local function repository_of(ctx)
  local first = ctx.merged[1]
  local repo = type(first) == "string" and location.split(first) or ""
  if repo == "" then
    for _, pair in ipairs(ctx.env) do
      local value = pair:match("^BORG_REPO=(.*)$")
      if value then
        repo = value
      end
    end
  end
  return repo ~= "" and repo or nil
end

-- Run command on instance inst with the call's args and run tables;
-- return the result and the run table. A plan with steps runs borg once
-- per step; the outcome of the last one carries them all in `steps`.
local function run_call(inst, command, args, run, report)
  local ctx = call.prepare(inst, command, args, run)
  report.ctx = ctx
  if call.settings.planning or call.skipped_by_dry_run(ctx) then
    return planned(ctx)
  end
  if ctx.definition.start then
    -- A command that outlives the call (mount) manages its own process.
    return ctx.definition.start(ctx, call.job(ctx, function() end))
  end
  local hold <close> = call.hold(ctx)
  local outcome, steps, duration = nil, {}, 0
  for i, step_argv in ipairs(ctx.argvs) do
    ctx.argv = step_argv
    local items = {}
    outcome = process.run(call.job(ctx, function(item)
      items[#items + 1] = item
    end))
    outcome.items = items
    judge_step(outcome, ctx)
    steps[i] = outcome
    duration = duration + outcome.duration
  end
  local result, info = call.result(ctx, outcome, steps, duration)
  if result == nil and command == "create" and call.settings.dry_run
      and ctx.merged.dry_run then
    -- borg writes no document for an archive it did not make.
    result = plan.placeholder(command)
  end
  return result, info
end

-- Add fn to the observers called after each call. It receives a table
-- { command, repository, argv, ok, result, run, error, started, duration }.
-- Returns a function that removes it again.
function call.observe(fn)
  observers[#observers + 1] = fn
  return function()
    for i = #observers, 1, -1 do
      if observers[i] == fn then
        table.remove(observers, i)
      end
    end
  end
end

-- Run command on instance inst with the call's args and run tables;
-- return the result and the run table.
function call.run(inst, command, args, run)
  local report = {}
  if #observers == 0 then
    return run_call(inst, command, args, run, report)
  end
  local started = os.time()
  local ok, result, info = pcall(run_call, inst, command, args, run, report)
  local ctx = report.ctx
  local event = {
    command = command, ok = ok, started = started,
    repository = ctx and repository_of(ctx),
    argv = ctx and ctx.argv,
    result = ok and result or nil, run = ok and info or nil,
    error = not ok and result or nil,
    duration = ok and info and info.duration or nil,
  }
  for _, fn in ipairs({ table.unpack(observers) }) do
    fn(event)
  end
  if not ok then
    error(result, 0)
  end
  return result, info
end

-- Judge the outcome of a call with a single run of borg; return the
-- result and the run table, or raise the call's error object.
function call.finish(ctx, outcome)
  judge_step(outcome, ctx)
  return call.result(ctx, outcome, { outcome }, outcome.duration)
end

-- Raise the error object for an outcome that is not a success (for
-- commands that manage their own process).
call.judge = judge

-- Mark this process as having seen borg's warning status.
function call.note_warning()
  state.warned = true
end

return call
