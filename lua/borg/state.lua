-- State kept between runs of a policy: a JSON file replaced atomically.
--
--   local store = require("borg.state").open("/var/lib/borglua/laptop.json")
--   if store:due("check", 7) then
--     borg.check{ repo }
--     store:done("check")
--   end
--   store:save()
--
-- Times are seconds since the epoch (os.time()). A missing file is an
-- empty store. A file that is not a JSON object raises an error, so a
-- damaged store is never silently replaced.

local errors = require "borg.errors"
local json = require "borg.json"
local sys = require "borg.sys"

local state = {}

local Store = {}
Store.__index = Store

local function usage(fmt, ...)
  errors.usage("state", fmt, ...)
end

local function check_name(name)
  if type(name) ~= "string" or name == "" then
    usage("a task name must be a non-empty string, got %s", errors.describe(name))
  end
end

-- Open the store at path. Returns the store; raises when the file exists
-- but cannot be read or is not a JSON object.
function state.open(path)
  if type(path) ~= "string" or path == "" then
    usage("state.open needs the path of the state file, got %s",
      errors.describe(path))
  end
  local data = {}
  local file, message, code = io.open(path, "rb")
  if file then
    local text = file:read("a")
    file:close()
    if text:find("%S") then
      local decoded, err = json.decode(text)
      if type(decoded) ~= "table" then
        usage("state file %s is not a JSON object (%s); move it away to start"
          .. " afresh", path, err or "wrong type")
      end
      data = decoded
    end
  elseif code ~= 2 then -- anything but "no such file"
    usage("cannot read state file: %s", message)
  end
  data.tasks = data.tasks or {}
  data.values = data.values or {}
  return setmetatable({ path = path, data = data }, Store)
end

-- Return the value stored under key, or nil.
function Store:get(key)
  return self.data.values[key]
end

-- Store a value (anything JSON can hold) under key.
function Store:set(key, value)
  self.data.values[key] = value
end

local function task(self, name)
  check_name(name)
  local entry = self.data.tasks[name]
  if entry == nil then
    entry = {}
    self.data.tasks[name] = entry
  end
  return entry
end

-- Return true when task name was never done, or last done at least
-- `days` days before now (a number; fractions allowed).
function Store:due(name, days, now)
  if type(days) ~= "number" or days < 0 then
    usage("due('%s', days): days must be a number of days, got %s",
      tostring(name), errors.describe(days))
  end
  local last = task(self, name).done
  return last == nil or (now or os.time()) - last >= days * 86400
end

-- Record that task name was done (at `now`, by default the current time).
function Store:done(name, now)
  task(self, name).done = now or os.time()
end

-- Record the last success of name (a task, a repository, a series).
function Store:success(name, now)
  task(self, name).success = now or os.time()
end

-- Return the time of the last success of name, or nil.
function Store:last_success(name)
  check_name(name)
  local entry = self.data.tasks[name]
  return entry and entry.success
end

-- Return the time task name was last done, or nil.
function Store:last_done(name)
  check_name(name)
  local entry = self.data.tasks[name]
  return entry and entry.done
end

-- Write the store to its file atomically. Raises on failure.
function Store:save()
  local ok, message = sys.write_file(self.path, json.encode(self.data) .. "\n",
                                     tonumber("600", 8))
  if not ok then
    error(errors.new { kind = "usage", command = "state",
                       message = "cannot save the state: " .. message }, 2)
  end
  return true
end

return state
