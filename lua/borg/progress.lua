-- The progress line that the host draws on a terminal while borg runs
-- with progress = true and no on_progress callback.
--
-- borg's progress records change shape as a phase goes on: the last
-- record of a phase carries only type, finished and time, and a
-- progress_message may lack its message. The line keeps the last value
-- seen of each counter, so any record, whatever fields it has, only
-- updates what it carries.

local core = require "borg.core"
local format = require "borg.format"

local progress = {}

-- Seconds between two redraws of the line; the record that ends a phase
-- is always drawn.
local REDRAW_INTERVAL = 0.1

local Line = {}
Line.__index = Line

-- Return elapsed seconds as "m:ss", or "h:mm:ss" from one hour up.
local function clock(seconds)
  local whole = math.floor(seconds)
  local hours, minutes = whole // 3600, whole % 3600 // 60
  if hours > 0 then
    return string.format("%d:%02d:%02d", hours, minutes, whole % 60)
  end
  return string.format("%d:%02d", minutes, whole % 60)
end

-- Return text without control characters, which would break the line.
local function printable(text)
  return (tostring(text):gsub("[%c\127]", "?"))
end

-- Return the last `room` bytes of text, starting at a UTF-8 character
-- boundary, with "..." in front when something was cut.
local function tail(text, room)
  if #text <= room then
    return text
  end
  if room <= 3 then
    return ""
  end
  local start = #text - (room - 3) + 1
  while start <= #text and text:byte(start) >= 0x80 and text:byte(start) < 0xC0 do
    start = start + 1
  end
  return "..." .. text:sub(start)
end

-- Return the counters part of the line for an archive_progress state.
local function archive_text(state)
  local parts = {}
  if state.nfiles then
    parts[#parts + 1] = string.format("%d files", state.nfiles)
  end
  if state.original_size then
    parts[#parts + 1] = format.size(state.original_size)
  end
  return table.concat(parts, ", ")
end

-- Return a progress line for command that writes to out (a file handle
-- on a terminal).
function progress.new(command, out)
  return setmetatable({
    command = command, out = out, started = core.now(), drawn = 0,
    shown = false, state = {},
  }, Line)
end

-- Merge record into the line's state; return true when the record ends a
-- phase.
function Line:merge(record)
  local state = self.state
  if record.type == "archive_progress" then
    state.kind = "archive"
    state.nfiles = tonumber(record.nfiles) or state.nfiles
    state.original_size = tonumber(record.original_size) or state.original_size
    if type(record.path) == "string" and record.path ~= "" then
      state.path = record.path
    end
  else
    state.kind = "message"
    if record.finished then
      state.message = nil
    elseif type(record.message) == "string" then
      state.message = record.message
    elseif tonumber(record.current) and tonumber(record.total) then
      state.message = string.format("%d of %d", record.current, record.total)
    end
  end
  return record.finished == true
end

-- Return the text of the line, at most width - 1 bytes long so that the
-- terminal never wraps it.
function Line:text(width)
  local state = self.state
  local head = string.format("borg %s: ", self.command)
  local body
  if state.kind == "archive" then
    body = archive_text(state)
  else
    body = state.message and printable(state.message) or ""
  end
  if body ~= "" then
    body = body .. ", "
  end
  local text = head .. body .. clock(core.now() - self.started)
  local path = state.kind == "archive" and state.path
  if path then
    text = text .. " " .. tail(printable(path), width - 1 - #text - 1)
  end
  return text:sub(1, width - 1)
end

-- Update the line with one of borg's progress records of any shape.
function Line:update(record)
  local ended = self:merge(record)
  local now = core.now()
  if not ended and now - self.drawn < REDRAW_INTERVAL then
    return
  end
  self.drawn = now
  local width = core.terminal_width(2) or 80
  self.out:write("\r\27[K", self:text(width))
  self.out:flush()
  self.shown = true
end

-- Erase the line, so that what comes next starts on an empty line.
function Line:clear()
  if self.shown then
    self.out:write("\r\27[K")
    self.out:flush()
    self.shown = false
  end
end

return progress
