-- Error objects raised by the borg library.
--
-- Every failure is raised as a table with the metatable below, so a
-- script can test `err.kind` and `err.msgid` instead of parsing text, and
-- `tostring(err)` still reads like an ordinary Lua error message.
-- Kinds: "usage" (bad call, nothing ran), "spawn" (borg could not be
-- started), "borg" (borg exited with rc >= 2, or check with rc 1),
-- "prompt", "timeout", "signal", "decode".

local errors = {}

local Error = {}
Error.__index = Error
Error.__name = "borg.error"

-- Format as "where: borg CMD: message (msgid, rc N)".
function Error.__tostring(err)
  local parts = {}
  if err.where then
    parts[#parts + 1] = err.where .. ": "
  end
  -- A policy's own errors name the policy in their message.
  if err.command ~= "policy" then
    parts[#parts + 1] = err.command and ("borg " .. err.command .. ": ") or "borg: "
  end
  parts[#parts + 1] = err.message or "failed"
  local detail = {}
  if err.msgid then
    detail[#detail + 1] = err.msgid
  end
  if err.rc then
    detail[#detail + 1] = "rc " .. err.rc
  elseif err.signal then
    detail[#detail + 1] = "signal " .. err.signal
  end
  if #detail > 0 then
    parts[#parts + 1] = " (" .. table.concat(detail, ", ") .. ")"
  end
  if err.hint then
    parts[#parts + 1] = ". " .. err.hint
  end
  return table.concat(parts)
end

-- Return true when value is an error object of this library.
function errors.is(value)
  return getmetatable(value) == Error
end

-- borg's error classes (msgids) for failures that a later attempt can
-- get past without any change: another process held the repository
-- lock, or the connection to a remote repository broke.
errors.RETRYABLE = {
  LockTimeout = true,              -- the lock was still held after lock_wait
  ConnectionClosed = true,         -- the remote side closed the connection
  ConnectionClosedWithHint = true, -- the same, with a hint about the server
}

-- Return true when value is an error object whose msgid marks the failure as
-- transient (see errors.RETRYABLE), false for anything else.
function errors.retryable(value)
  return errors.is(value) and value.msgid ~= nil
    and errors.RETRYABLE[value.msgid] == true
end

-- Next steps for borg failures whose cause the msgid alone makes clear,
-- by msgid. The text becomes the error's `hint` field.
errors.HINTS = {
  LockTimeout = "Another borg process holds the repository lock: wait"
    .. " longer with lock_wait = SECONDS, or, when no borg uses the"
    .. " repository, remove a stale lock with borg.break_lock{ REPOSITORY }",
  PassphraseWrong = "Check the instance's passphrase, BORG_PASSPHRASE or"
    .. " BORG_PASSCOMMAND",
  ["Repository.DoesNotExist"] = "Check the path, or create the"
    .. " repository with borg.init{ REPOSITORY, encryption = ... }",
  ["Archive.AlreadyExists"] = "Choose another archive name, for example"
    .. " one with the {now} placeholder",
}

-- Return a new error object with the given fields.
function errors.new(fields)
  return setmetatable(fields, Error)
end

-- Return "source:line" of the first stack frame outside the library,
-- which is the caller's line that a usage error points at.
local function caller_position()
  for level = 3, 40 do
    local info = debug.getinfo(level, "Sl")
    if info == nil then
      return nil
    end
    local source = info.source or ""
    if info.what ~= "C" and not source:find("^@lua/borg/") then
      return info.short_src .. ":" .. (info.currentline or 0)
    end
  end
  return nil
end

-- Return "source:line" of the line that called the library.
errors.caller_position = caller_position

-- Raise a usage error for command with a formatted message.
function errors.usage(command, fmt, ...)
  error(errors.new {
    kind = "usage",
    command = command,
    message = string.format(fmt, ...),
    where = caller_position(),
  }, 0)
end

-- Return a short description of value for messages: its type, and the
-- value itself for numbers and (shortened) strings.
function errors.describe(value)
  local kind = math.type(value) or type(value)
  if kind == "string" then
    if #value > 40 then
      value = value:sub(1, 37) .. "..."
    end
    return string.format("string %q", value):gsub("\
", "\n")
  elseif kind == "integer" or kind == "float" or kind == "boolean" then
    return kind .. " " .. tostring(value)
  end
  return kind
end

-- Return the closest name in candidates to name, or nil when none is
-- close enough to be a likely typo.
function errors.nearest(name, candidates)
  local best, best_distance
  local limit = math.max(2, #name // 3)
  if #name > 64 then
    return nil
  end
  for _, candidate in ipairs(candidates) do
    if math.abs(#candidate - #name) > limit then
      goto continue
    end
    local distance = errors.edit_distance(name, candidate)
    if best_distance == nil or distance < best_distance
        or (distance == best_distance and candidate < best) then
      best, best_distance = candidate, distance
    end
    ::continue::
  end
  if best and best_distance <= limit then
    return best
  end
  return nil
end

-- Return the Levenshtein distance between strings a and b.
function errors.edit_distance(a, b)
  local previous, current = {}, {}
  for j = 0, #b do
    previous[j] = j
  end
  for i = 1, #a do
    current[0] = i
    local ai = a:byte(i)
    for j = 1, #b do
      local cost = ai == b:byte(j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1,
                            previous[j - 1] + cost)
    end
    previous, current = current, previous
  end
  return previous[#b]
end

return errors
