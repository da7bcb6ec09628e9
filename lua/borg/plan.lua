-- Plan mode: describe each borg invocation instead of running it.
--
-- `borglua --plan policy.lua` (or `borg.planning = true`) makes every call
-- check its arguments as usual, print what it would run, and return a
-- placeholder instead of borg's result. The listing shows the argv, the
-- working directory and the changes to the environment, with the values
-- of secret variables masked.

local plan = {}

local env = require "borg.env"

-- Return true when the environment variable `name` contains a secret.
plan.is_secret = env.is_secret

-- Quote one argv word for reading, as a POSIX shell would need it.
local function quote(word)
  if word ~= "" and not word:find("[^%w%-%./:=@%%+,_{}]") then
    return word
  end
  return "'" .. word:gsub("'", "'\\''") .. "'"
end

local function split_pair(pair)
  local name, value = pair:match("^([^=]*)=(.*)$")
  return name or pair, value or ""
end

-- Return the sorted changes from the host environment `host` (a table
-- name -> value) to the child's, given as a list of "NAME=value".
-- Each change is { name, value } or { name, removed = true }; values of
-- secret names are env.MASK.
function plan.env_changes(host, child_list)
  local child, changes = {}, {}
  for _, pair in ipairs(child_list) do
    local name, value = split_pair(pair)
    child[name] = value
  end
  for name, value in pairs(child) do
    if host[name] ~= value then
      changes[#changes + 1] = { name, env.is_secret(name) and env.MASK or value }
    end
  end
  for name in pairs(host) do
    if child[name] == nil then
      changes[#changes + 1] = { name, removed = true }
    end
  end
  table.sort(changes, function(a, b) return a[1] < b[1] end)
  return changes
end

-- Return the lines that describe one planned invocation: the argv, then
-- indented cwd, environment changes and descriptors that carry secrets.
function plan.describe(invocation)
  local words = {}
  for i, word in ipairs(invocation.argv) do
    words[i] = quote(word)
  end
  local lines = { table.concat(words, " ") }
  if invocation.cwd then
    lines[#lines + 1] = "  cwd: " .. invocation.cwd
  end
  for _, change in ipairs(invocation.changes or {}) do
    if change.removed then
      lines[#lines + 1] = "  env: unset " .. change[1]
    else
      local value = change[2] == env.MASK and env.MASK or quote(change[2])
      lines[#lines + 1] = "  env: " .. change[1] .. "=" .. value
    end
  end
  for _, note in ipairs(invocation.notes or {}) do
    lines[#lines + 1] = "  " .. note
  end
  return lines
end

local Placeholder = {}
local LABELS = setmetatable({}, { __mode = "k" })

-- Return a placeholder for the result of a planned command: any string
-- field of it is another placeholder, so `r.archive.name` works; it has
-- no array items, so `ipairs` and `#` see an empty array.
function plan.placeholder(label)
  local value = setmetatable({}, Placeholder)
  LABELS[value] = label
  return value
end

Placeholder.__index = function(self, key)
  if type(key) == "string" then
    local child = plan.placeholder(LABELS[self] .. "." .. key)
    rawset(self, key, child)
    return child
  end
  return nil
end

Placeholder.__tostring = function(self)
  return "<planned " .. LABELS[self] .. ">"
end

Placeholder.__name = "borg.planned"

-- Return true when value is a placeholder of plan mode.
function plan.is_placeholder(value)
  return getmetatable(value) == Placeholder
end

return plan
