-- The environment of borg's child processes.
--
-- The host's own environment is never changed. Each child gets a list
-- built explicitly: the host's variables, then the instance's `env`, then
-- the call's `env`. A value of false removes an inherited variable.

local core = require "borg.core"
local errors = require "borg.errors"

local env = {}

local host -- the host's environment, read once: the host never changes it

-- Return a copy of the host's environment as { NAME = value }.
function env.host()
  host = host or core.environ()
  local copy = {}
  for name, value in pairs(host) do
    copy[name] = value
  end
  return copy
end

-- Check the table of changes given as `env` and return it.
function env.check(command, changes, what)
  if changes == nil then
    return {}
  end
  if type(changes) ~= "table" then
    errors.usage(command, "%s must be a table of NAME = value, got %s", what,
      type(changes))
  end
  for name, value in pairs(changes) do
    if type(name) ~= "string" or name == "" or name:find("[=%z]") then
      errors.usage(command, "%s has an invalid variable name %s", what,
        string.format("%q", tostring(name)))
    end
    local kind = type(value)
    if kind == "string" then
      if value:find("\0", 1, true) then
        errors.usage(command, "%s value of %s contains a NUL byte", what, name)
      end
    elseif kind ~= "number" and value ~= false then
      errors.usage(command, "%s value of %s must be a string, a number or false"
        .. " (to remove it), got %s", what, name, kind)
    end
  end
  return changes
end

-- Apply changes (checked by env.check) to the map vars.
function env.apply(vars, changes)
  for name, value in pairs(changes) do
    if value == false then
      vars[name] = nil
    elseif math.type(value) == "integer" then
      vars[name] = string.format("%d", value)
    else
      vars[name] = tostring(value)
    end
  end
  return vars
end

-- Return the map as a sorted list of "NAME=value" strings.
function env.list(vars)
  local list = {}
  for name, value in pairs(vars) do
    list[#list + 1] = name .. "=" .. value
  end
  table.sort(list)
  return list
end

return env
