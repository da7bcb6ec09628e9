-- Byte streams between a script and borg: the run table's `stdin` source
-- and `stdout` sink.
--
-- A source is read only when borg's stdin pipe has room (see
-- process.step), and a sink receives each chunk as borg writes it, so a
-- stream of any size passes through in bounded host memory.
-- check_source and check_sink raise usage errors. A source function that
-- returns something other than a string or nil raises a usage error while
-- borg runs, and borg is stopped first.

local core = require "borg.core"
local errors = require "borg.errors"
local progress = require "borg.progress"

local stream = {}

-- Bytes read from a string or a file handle per chunk.
stream.CHUNK = 256 * 1024

local describe_type = errors.describe

-- Return true when value is an open file handle.
local function is_file(value)
  return io.type(value) == "file"
end

-- Raise a usage error unless value can be the run table's stdin.
function stream.check_source(command, value)
  if type(value) == "string" or type(value) == "function" or is_file(value) then
    return
  end
  errors.usage(command, "run option 'stdin' must be a string, an open file handle"
    .. " or a function that returns chunks (nil at the end), got %s",
    io.type(value) == "closed file" and "a closed file" or describe_type(value))
end

-- Raise a usage error unless value can be the run table's stdout.
function stream.check_sink(command, value)
  if type(value) == "function" or is_file(value) then
    return
  end
  errors.usage(command, "run option 'stdout' must be an open file handle or a"
    .. " function that receives chunks, got %s",
    io.type(value) == "closed file" and "a closed file" or describe_type(value))
end

-- Return a function that returns the chunks of string text, then nil.
local function string_source(text)
  local offset = 1
  return function()
    if offset > #text then
      return nil
    end
    local chunk = text:sub(offset, offset + stream.CHUNK - 1)
    offset = offset + #chunk
    return chunk
  end
end

-- Return a function that returns the chunks of the file handle, then nil.
-- The handle stays open: it belongs to the caller.
local function file_source(command, file)
  return function()
    local chunk, err = file:read(stream.CHUNK)
    if chunk == nil and err then
      error(errors.new {
        kind = "usage", command = command,
        message = "run option 'stdin': reading the file failed: " .. tostring(err),
      }, 0)
    end
    return chunk
  end
end

-- Return a function that calls source and checks what it returns.
local function function_source(command, source)
  return function()
    local chunk = source()
    if chunk ~= nil and type(chunk) ~= "string" then
      error(errors.new {
        kind = "usage", command = command,
        message = string.format("the run option 'stdin' function returned %s;"
          .. " it must return strings, and nil at the end", describe_type(chunk)),
      }, 0)
    end
    return chunk
  end
end

-- Return the function that process.start reads borg's stdin from.
function stream.source(command, value)
  if type(value) == "string" then
    return string_source(value)
  elseif is_file(value) then
    return file_source(command, value)
  end
  return function_source(command, value)
end

-- Return the function that receives each chunk of borg's stdout.
function stream.sink(command, value)
  if type(value) == "function" then
    return value
  end
  return function(chunk)
    local ok, err = value:write(chunk)
    if not ok then
      error(errors.new {
        kind = "usage", command = command,
        message = "run option 'stdout': writing the file failed: " .. tostring(err),
      }, 0)
    end
  end
end

-- Return true when the call makes borg write data (not JSON) on stdout:
-- extract with stdout = true, export_tar to "-", key_export to "-" or to
-- no file at all.
function stream.writes_data(command, args)
  if command == "extract" then
    return args.stdout == true
  elseif command == "export_tar" then
    return args[2] == "-"
  elseif command == "key_export" then
    return args[2] == nil or args[2] == "-"
  end
  return false
end

-- Raise a usage error when a stdout sink is given to a call that writes
-- no data on stdout.
function stream.check_sink_use(command, args)
  if not stream.writes_data(command, args) then
    errors.usage(command, "run option 'stdout' receives the data that borg writes"
      .. " on stdout, and this call writes none: use it with extract and"
      .. " stdout = true, export_tar to \"-\", or key_export to \"-\"")
  end
end

-- Add to the merged arguments of a call what its streams need: an
-- iterator's own arguments, and --progress when on_progress is given and
-- the command accepts it.
function stream.adjust_args(spec, merged, run, iterate)
  for name, value in pairs(iterate and iterate.args or {}) do
    merged[name] = value
  end
  if run.on_progress and spec.options.progress and merged.progress == nil then
    merged.progress = true
  end
end

-- Make the plan of ctx read borg's stdout as its streams need: in chunks
-- for a stdout sink, in lines for an iterator over JSON lines.
function stream.adjust_plan(ctx, iterate)
  if ctx.run.stdout ~= nil then
    stream.check_sink_use(ctx.command, ctx.merged)
    ctx.plan.stdout = "chunks"
  end
  if iterate and iterate.stdout_lines then
    ctx.plan.stdout = "lines"
  end
end

-- Return true when the host should draw a progress line for the call:
-- progress = true, no on_progress callback, and stderr is a terminal.
local function wants_line(ctx)
  return ctx.merged.progress == true and ctx.run.on_progress == nil
    and core.isatty(2)
end

-- Connect the run table's stdin, stdout and the progress line to job.
function stream.attach(job, ctx)
  local run = ctx.run
  if run.stdin ~= nil then
    job.stdin = stream.source(ctx.command, run.stdin)
  end
  if run.stdout ~= nil then
    job.on_chunk = stream.sink(ctx.command, run.stdout)
  end
  if not wants_line(ctx) then
    return
  end
  local line = progress.new(ctx.command, io.stderr)
  local print_log = job.print_log
  job.on_progress = function(record)
    line:update(record)
  end
  if print_log then
    job.print_log = function(record)
      line:clear()
      print_log(record)
    end
  end
  job.on_exit = function()
    line:clear()
  end
end

return stream
