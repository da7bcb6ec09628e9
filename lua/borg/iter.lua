-- Iterators over the records of a borg call, for Lua's generic for:
--
--   for item in borg.iter.list{ "/srv/repo::archive" } do ... end
--
-- Each record is decoded and handed to the loop, so a listing of any
-- size passes through in constant memory. Items of list and entries of
-- prune have the fields of the shared result schema, as the plain calls
-- return them on borg 1.2 and borg 2. The fourth
-- value of the call is the loop's closing value: leaving the loop early
-- (break, return, an error) stops borg and waits until it is reaped.
-- Its field `pid` is borg's process id. After a complete loop, its fields
-- `result` and `run` hold what the plain call returns, without the
-- records the loop received.
--
-- Misuse raises a "usage" error before borg starts; a failed borg raises
-- its error object from the loop, once its records are consumed.

local call = require "borg.call"
local commands = require "borg.commands"
local errors = require "borg.errors"
local process = require "borg.process"
local schema = require "borg.schema"

local iter = {}

-- Return a create --list record as { status, path }.
local function file_record(record)
  return { status = record.status, path = record.path }
end

-- Return a line of extract --list or export_tar --list as { path }.
local function path_record(record)
  return { path = record.message }
end

-- Return a line of prune --list as the plain prune call lists it.
local function prune_record(record)
  return schema.prune_entry(commands.parse_prune_line(record.message))
end

-- What each command iterates over: arguments the iterator adds, and
-- either borg's stdout lines (JSON) or its list records.
local SOURCES = {
  list = { args = { json_lines = true }, stdout_lines = true, archive = true },
  diff = { args = { json_lines = true }, stdout_lines = true },
  create = { args = { list = true }, record = file_record },
  import_tar = { args = { list = true }, record = file_record },
  extract = { args = { list = true }, record = path_record },
  export_tar = { args = { list = true }, record = path_record },
  prune = { args = { list = true }, record = prune_record },
}

local NAMES = {}
for name in pairs(SOURCES) do
  NAMES[#NAMES + 1] = name
end
table.sort(NAMES)

local Iteration = {}
Iteration.__index = Iteration
Iteration.__name = "borg.iteration"

Iteration.__tostring = function(self)
  return string.format("<borg.iteration: borg %s, pid %s%s>", self.ctx.command,
    tostring(self.pid), self.run and ", finished" or "")
end

-- Seconds that borg gets to end by itself when a loop is left early.
local BREAK_WAIT = 0.2

-- Stop borg unless it has ended, and wait until it is reaped.
function Iteration:close()
  if self.handle then
    process.abort(self.handle, BREAK_WAIT)
  end
  self:release()
end

-- Release the repository that the iteration holds inside borg.parallel.
function Iteration:release()
  local hold = self.hold
  if hold then
    self.hold = nil
    getmetatable(hold).__close(hold)
  end
end

Iteration.__close = Iteration.close

-- Append a record to the iteration's queue.
function Iteration:push(record)
  self.last = self.last + 1
  self.queue[self.last] = record
end

-- Remove and return the oldest queued record, or nil.
function Iteration:pop()
  local first = self.first
  if first > self.last then
    return nil
  end
  local record = self.queue[first]
  self.queue[first] = nil
  self.first = first + 1
  return record
end

-- The generic for's iterator function: return the next record, or nil
-- once borg has ended. Raises borg's error object after the last record.
local function next_record(self)
  while true do
    local record = self:pop()
    if record ~= nil then
      return record
    end
    if self.run then
      return nil
    end
    if not process.step(self.handle) then
      self:release()
      self.result, self.run = call.finish(self.ctx, process.outcome(self.handle))
      return nil
    end
  end
end

-- Raise a usage error when the list iterator is not given an archive.
local function check_archive(command, args)
  local location = type(args) == "table" and args[1]
  if type(location) == "string" and not location:find("::.", 1) then
    errors.usage(command, "borg.iter.list needs an archive, not a repository:"
      .. " give \"repo::archive\" (or \"::archive\" with BORG_REPO), got \"%s\"",
      location)
  end
end

-- Start command on instance inst and return the generic for's iterator
-- function, its state, nil and the closing value.
local function start(inst, command, args, run)
  local source = SOURCES[command]
  if source.archive then
    check_archive(command, args)
  end
  local ctx = call.prepare(inst, command, args, run, source)
  if call.settings.planning or call.skipped_by_dry_run(ctx) then
    -- Plan mode prints the command and iterates over nothing.
    call.planned(ctx)
    return function() return nil end, nil, nil, nil
  end
  local self = setmetatable({ ctx = ctx, queue = {}, first = 1, last = 0 }, Iteration)
  self.hold = call.hold(ctx)
  self.hold:on_abandon(function()
    self:close()
  end)
  local function push(record)
    self:push(command == "list" and schema.item_in_place(record) or record)
  end
  local on_list = source.record and function(record)
    self:push(source.record(record))
  end
  local ok, handle = pcall(process.start, call.job(ctx, push, on_list))
  if not ok then
    self:release()
    error(handle, 0)
  end
  self.handle = handle
  self.pid = self.handle.state.pid
  return next_record, self, nil, self
end

-- Return the table of iterators bound to instance inst.
function iter.bind(inst)
  local bound = {}
  for _, name in ipairs(NAMES) do
    bound[name] = function(first, ...)
      if first == bound then
        return start(inst, name, ...)
      end
      return start(inst, name, first, ...)
    end
  end
  return setmetatable(bound, {
    __index = function(_, name)
      local guess = type(name) == "string" and errors.nearest(name, NAMES)
      errors.usage(nil, "borg.iter has no iterator '%s'%s (it has %s)",
        tostring(name), guess and string.format(" (did you mean '%s'?)", guess) or "",
        table.concat(NAMES, ", "))
    end,
  })
end

iter.NAMES = NAMES

return iter
