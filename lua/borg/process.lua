-- Running one borg process and reading what it writes.
--
-- borg always runs with --log-json, so each stderr line is a JSON record
-- (log messages, file status, progress, questions) or, for the few things
-- borg prints outside its logging, plain text. This module sorts the
-- records as they arrive, hands them to callbacks, and keeps bounded
-- tails of the rest, so a flood of stderr never grows host memory.
-- Failures to start the program raise a "spawn" error; everything else
-- is reported in the returned outcome for the caller to judge.

local core = require "borg.core"
local env = require "borg.env"
local errors = require "borg.errors"
local json = require "borg.json"
local scheduler = require "borg.scheduler"

local process = {}

local LOG_TAIL = 100     -- log records kept in run.log
local WARNING_MAX = 1000 -- warning records kept in run.warnings
local STDERR_TAIL = 20   -- plain stderr lines kept for error messages

local SIGNAL_NAMES = {
  [1] = "SIGHUP", [2] = "SIGINT", [3] = "SIGQUIT", [6] = "SIGABRT",
  [9] = "SIGKILL", [11] = "SIGSEGV", [13] = "SIGPIPE", [15] = "SIGTERM",
}

-- Return the conventional name of signal number n.
function process.signal_name(n)
  return SIGNAL_NAMES[n] or ("signal " .. n)
end

-- Append value to list, keeping at most max entries (the newest).
local function push_bounded(list, value, max)
  list[#list + 1] = value
  if #list > max then
    table.remove(list, 1)
  end
end

-- Return the record in a stderr line, or nil for plain text. A record can
-- follow other text on the same line, as when borg writes a passphrase
-- prompt without a newline just before its error record.
local function parse_record(line)
  local start = line:find("{\"", 1, true)
  if start == nil then
    return nil
  end
  local record = json.decode(start == 1 and line or line:sub(start))
  if type(record) == "table" and type(record.type) == "string" then
    return record, start > 1 and line:sub(1, start - 1) or nil
  end
  return nil
end

-- Return true for records that the host does not print: an error record
-- with a msgid becomes the message of the error object, and printing it
-- too would show it twice. Python's GetPassWarning (it cannot turn off
-- echo without a terminal) only precedes the prompt error that names the
-- real cause.
local function quiet_record(record)
  if record.msgid and (record.levelname == "ERROR" or record.levelname == "CRITICAL") then
    return true
  end
  return record.levelname == "WARNING"
    and tostring(record.message):find("GetPassWarning", 1, true) ~= nil
end

-- Print record with the job's print_log. An error record without a msgid
-- is held back until the next record is printed or borg has ended: it
-- may become the message of the call's error object, and then printing
-- it too would show it twice (see process.release_held).
local function print_record(job, state, record)
  process.release_held(state)
  local level = record.levelname
  if record.msgid == nil and (level == "ERROR" or level == "CRITICAL") then
    state.held_error, state.print_held = record, job.print_log
  else
    job.print_log(record)
  end
end

-- Print the error record that print_record held back, unless it is the
-- record `used`, whose message the caller's error object carries.
function process.release_held(state, used)
  local record, print_log = state.held_error, state.print_held
  state.held_error, state.print_held = nil, nil
  if record and record ~= used then
    print_log(record)
  end
end

local function handle_log(job, state, record)
  local name = record.name
  if name == "borg.output.list" and job.on_list then
    job.on_list(record)
    return
  end
  if name == "borg.output.list" and job.capture_list then
    state.list_lines[#state.list_lines + 1] = record.message
    return
  end
  if name == "borg.output.stats" and job.capture_stats then
    state.stats_lines[#state.stats_lines + 1] = record.message
    return
  end
  push_bounded(state.log, record, LOG_TAIL)
  local level = record.levelname
  if level == "WARNING" then
    push_bounded(state.warnings, record, WARNING_MAX)
  elseif level == "ERROR" or level == "CRITICAL" then
    push_bounded(state.errors, record, LOG_TAIL)
  end
  if job.on_log then
    job.on_log(record)
  elseif job.print_log and not quiet_record(record) then
    print_record(job, state, record)
  end
end

local function handle_record(job, state, record)
  local kind = record.type
  if job.on_record then
    job.on_record(record)
  end
  if kind == "log_message" then
    handle_log(job, state, record)
  elseif kind == "file_status" then
    if job.on_file then
      job.on_file(record)
    end
    if job.on_list then
      job.on_list(record)
    elseif job.capture_files then
      state.files[#state.files + 1] = { status = record.status, path = record.path }
    end
  elseif kind == "archive_progress" or kind == "progress_percent"
      or kind == "progress_message" then
    if job.on_progress then
      job.on_progress(record)
    end
  elseif kind:find("^question_") then
    state.questions[#state.questions + 1] = record
  else
    push_bounded(state.log, record, LOG_TAIL)
  end
end

local function handle_stderr(job, state, line)
  local record, before = parse_record(line)
  if before and before:find("%S") then
    push_bounded(state.stderr, before, STDERR_TAIL)
  end
  if record then
    handle_record(job, state, record)
  elseif line:find("%S") then
    push_bounded(state.stderr, line, STDERR_TAIL)
    if job.echo_text then
      io.stderr:write(env.mask_text(line, job.secrets), "\n")
    end
  end
end

-- Wait for the next event of proc and return it as proc:read does;
-- inside borg.parallel the task yields meanwhile (see borg.scheduler).
function process.wait(proc)
  return scheduler.read(proc)
end

-- Write chunks of the job's stdin source until the source ends or the
-- pipe is full; a "writable" event resumes the feeding.
local function feed(handle)
  local proc = handle.proc
  while handle.source do
    local chunk = handle.source()
    if chunk == nil then
      handle.source = nil
      proc:close_stdin()
      return
    end
    if #chunk > 0 then
      local pending, full = proc:write(chunk)
      handle.state.stdin_bytes = handle.state.stdin_bytes + #chunk
      if pending == nil then
        -- borg closed its stdin or exited; its exit status tells why.
        handle.source = nil
        return
      end
      if full then
        return
      end
    end
  end
end

local function handle_stdout(handle, data, truncated)
  local job, state = handle.job, handle.state
  if job.stdout == "whole" then
    state.stdout, state.stdout_truncated = data, truncated
  else
    state.stdout_bytes = state.stdout_bytes + #data
    job.on_chunk(data)
  end
end

-- Record that the handle's process was reaped with this exit report.
local function reaped(handle, status, signal, timed_out)
  local state = handle.state
  state.rc, state.signal, state.timed_out = status, signal, timed_out
  handle.done = true
  handle.source = nil
  if handle.job.on_exit then
    handle.job.on_exit()
  end
end

-- Act on one event of the handle's process. Return false for the exit
-- report, after which the process is reaped and its pipes are drained.
local function dispatch(handle, kind, data, extra, timed_out)
  if kind == "stderr" then
    handle_stderr(handle.job, handle.state, data)
  elseif kind == "line" then
    handle.job.on_line(data, extra)
  elseif kind == "stdout" then
    handle_stdout(handle, data, extra)
  elseif kind == "writable" then
    feed(handle)
  elseif kind == "exit" then
    reaped(handle, data, extra, timed_out)
    return false
  end
  return true
end

-- Wait for one event of the handle's process and act on it. Return false
-- once the process has exited and both of its pipes are drained.
function process.step(handle)
  return dispatch(handle, process.wait(handle.proc))
end

-- Act on what the handle's process reported so far without waiting;
-- return true once it has exited.
function process.poll(handle)
  while true do
    local kind, data, extra, timed_out = handle.proc:read(false)
    if kind == nil then
      return false
    end
    if not dispatch(handle, kind, data, extra, timed_out) then
      return true
    end
  end
end

-- Raise a "signal" error when a signal interrupted the host: after that,
-- no borg command starts.
function process.check_interrupted(command)
  local interrupted = core.interrupted()
  if interrupted then
    error(errors.new {
      kind = "signal", command = command, signal = interrupted,
      message = string.format("not started: the host was interrupted by %s and"
        .. " runs no more borg commands", process.signal_name(interrupted)),
    }, 0)
  end
end

-- Raise the "spawn" error for a program that could not be started.
function process.spawn_error(command, program, name, message, argv)
  local hint = ""
  if name == "ENOENT" then
    hint = "; install borgbackup, or give the program's path as"
      .. " borg.new{ borg = \"/path/to/borg\" }"
  elseif name == "EACCES" then
    hint = "; check that the file is an executable program"
  end
  error(errors.new {
    kind = "spawn",
    command = command,
    message = string.format("cannot run '%s': %s (%s)%s", program,
      message:gsub("^%u", string.lower), name, hint),
    argv = argv,
  }, 0)
end

local cold_noted = {} -- programs whose fallback from warm mode was logged

-- Log once per program, at debug level, why a call that asked for warm
-- mode runs borg with exec instead.
local function note_cold(job, state, proc)
  local warm, reason = proc:warm()
  if warm or reason == nil or job.log_level ~= "debug"
      or cold_noted[job.argv[1]] then
    return
  end
  cold_noted[job.argv[1]] = true
  handle_log(job, state, { type = "log_message", levelname = "DEBUG",
    name = "borglua.warm", time = os.time(), message = reason })
end

-- Start job and return its handle for process.step. job fields: command,
-- argv (with the program first), masked_argv, env (list of "NAME=value"),
-- cwd, timeout, stdin (a function that returns the next chunk of borg's
-- stdin, nil at its end; without it stdin is /dev/null), keep_stdin (a
-- pipe left open without stdin), on_spawn(proc), on_record(record)
-- (every record, before it is sorted), stdio
-- ("inherit": borg gets the host's own stdin, stdout and stderr),
-- max_stdout (bytes of a whole stdout kept), stdout ("whole", "lines",
-- "chunks" or "null"), echo_text (print stderr lines that are not
-- records on the host's stderr), secrets (values masked in what the host
-- prints), fds, on_line, on_chunk, on_log, on_file,
-- on_progress, print_log, capture_files, capture_list, capture_stats,
-- on_list (receives each file status record and each line of borg's list
-- output instead of the captures), on_exit (called once borg is reaped),
-- warm (start borg through a warm server when it can), log_level.
function process.start(job)
  -- Checked here too: inside borg.parallel a signal can arrive while a
  -- call waits for its repository, after call.prepare checked.
  process.check_interrupted(job.command)
  local inherit = job.stdio == "inherit"
  local proc, errname, message = core.spawn {
    file = job.argv[1],
    args = job.argv,
    env = job.env,
    cwd = job.cwd,
    stdin = inherit and "inherit" or (job.stdin or job.keep_stdin) and "pipe" or "null",
    stdout = inherit and "inherit" or job.stdout or "null",
    stderr = inherit and "inherit" or "pipe",
    fds = job.fds,
    timeout = job.timeout,
    max_stdout = job.max_stdout,
    warm = job.warm,
  }
  if proc == nil then
    process.spawn_error(job.command, job.argv[1], errname, message, job.masked_argv)
  end
  if job.on_spawn then
    job.on_spawn(proc)
  end
  local handle = {
    job = job, proc = proc, source = job.stdin, started = core.now(),
    state = {
      log = {}, warnings = {}, errors = {}, files = {}, list_lines = {},
      stats_lines = {}, questions = {}, stderr = {}, stdout = nil,
      stdin_bytes = 0, stdout_bytes = 0, pid = proc:pid(),
    },
  }
  note_cold(job, handle.state, proc)
  local ok, err = pcall(feed, handle)
  if not ok then
    process.abort(handle)
    error(err, 0)
  end
  return handle
end

-- Stop the handle's process and wait until it is reaped, so that borg
-- releases the repository lock. Does nothing once the process has ended.
-- With delay (seconds), borg gets that long to end by itself before it
-- gets SIGTERM: a borg that has already written everything may be
-- releasing its lock, and a signal then can leave a stale lock entry.
function process.abort(handle, delay)
  process.release_held(handle.state)
  if handle.done then
    return
  end
  handle.source = nil
  if delay then
    handle.proc:stop(delay)
  else
    handle.proc:kill()
  end
  local kind, data, extra, timed_out
  repeat
    kind, data, extra, timed_out = process.wait(handle.proc)
  until kind == "exit"
  reaped(handle, data, extra, timed_out)
end

-- Return the outcome of the handle's process, which has ended.
function process.outcome(handle)
  local state = handle.state
  state.duration = core.now() - handle.started
  state.interrupted = core.interrupted()
  return state
end

-- Wait for a started job to end and return its outcome.
function process.finish(handle)
  local ok, err = pcall(function()
    while not handle.done and process.step(handle) do
    end
  end)
  if not ok then
    -- A callback or the stdin source raised: stop borg and wait for it,
    -- so that it releases the repository lock before the error reaches
    -- the caller.
    process.abort(handle)
    error(err, 0)
  end
  return process.outcome(handle)
end

-- Run job and return its outcome (see process.start for job's fields).
function process.run(job)
  return process.finish(process.start(job))
end

return process
