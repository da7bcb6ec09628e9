-- The environment of borg's child processes, and the passphrase.
--
-- The host's own environment is never changed. Each child gets a map
-- built explicitly, in layers: the host's variables, then the instance's
-- `env` (and its `passphrase` setting), then what set_environ and
-- unset_environ changed on the instance, then the call's `env`. A value
-- of false removes a variable of a lower layer.
--
-- borg takes the first of BORG_PASSPHRASE (even when empty),
-- BORG_PASSCOMMAND and BORG_PASSPHRASE_FD that is set. So that a
-- leftover variable never wins, the highest layer that names one of them
-- chooses the source, and the child sees only that source. A passphrase
-- reaches borg on a pipe at descriptor PASSPHRASE_FD, never in the
-- environment, where other processes of the same user can read it.
--
-- Functions raise usage errors (borg.errors) for bad input.

local core = require "borg.core"
local dotenv = require "borg.dotenv"
local errors = require "borg.errors"

local env = {}

-- The descriptor number of the passphrase pipe in the child. Python
-- gives a new file the lowest free number, and borg closes this
-- descriptor once it has read it. A high number keeps any second read by
-- borg from finding one of borg's own files there; it fails instead.
env.PASSPHRASE_FD = 20

-- The text that replaces a masked value.
env.MASK = "********"

local PASSPHRASE_NAMES = { "BORG_PASSPHRASE", "BORG_PASSCOMMAND",
                           "BORG_PASSPHRASE_FD" }

-- Secret values shorter than this are not searched for in text, because
-- masking every "ab" in a message would make it unreadable.
local MIN_MASKED_LENGTH = 4

local host -- the host's environment, read once: the host never changes it

-- Per-instance state kept out of the instance table, so that printing an
-- instance shows no passphrase: { passphrase, overlay, last_set }.
local private = setmetatable({}, { __mode = "k" })

-- Descriptors named by BORG_PASSPHRASE_FD, read once: a pipe gives its
-- data only once, and every call needs it.
local read_fds = {}

-- Return a copy of the host's environment as { NAME = value }.
function env.host()
  host = host or core.environ()
  local copy = {}
  for name, value in pairs(host) do
    copy[name] = value
  end
  return copy
end

-- Return value as the string a child sees: integers without a decimal
-- point, booleans as Python writes them (borgapi turns False into
-- "False").
local function stringify(value)
  if math.type(value) == "integer" then
    return string.format("%d", value)
  elseif value == true then
    return "True"
  elseif value == false then
    return "False"
  end
  return tostring(value)
end

local function check_name(command, name, what)
  if type(name) ~= "string" or name == "" or name:find("[=%z]") then
    errors.usage(command, "%s has an invalid variable name %s", what,
      string.format("%q", tostring(name)))
  end
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
    check_name(command, name, what)
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
    else
      vars[name] = stringify(value)
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

-- borg variables whose names look secret but whose values are not: a
-- yes/no setting and a descriptor number.
local NOT_SECRET = { BORG_DISPLAY_PASSPHRASE = true, BORG_PASSPHRASE_FD = true }

-- Return true when the value of variable name is a secret: a passphrase,
-- a passcommand (it may contain one), or a name that says password,
-- secret, token, credential or key (AWS_SECRET_ACCESS_KEY,
-- RESTIC_PASSWORD, GITHUB_TOKEN).
function env.is_secret(name)
  local upper = tostring(name):upper()
  if NOT_SECRET[upper] then
    return false
  end
  return upper:find("PASS", 1, true) ~= nil
    or upper:find("SECRET", 1, true) ~= nil
    or upper:find("TOKEN", 1, true) ~= nil
    or upper:find("CREDENTIAL", 1, true) ~= nil
    or upper:find("_KEY$") ~= nil
end

-- Return a copy of vars with secret values replaced by env.MASK. vars is
-- a map { NAME = value } (false stays false: a removed variable) or a
-- list of "NAME=value" strings.
function env.mask(vars)
  local copy = {}
  if #vars > 0 then
    for i, item in ipairs(vars) do
      local name = item:match("^([^=]*)=")
      copy[i] = (name and env.is_secret(name)) and (name .. "=" .. env.MASK) or item
    end
    return copy
  end
  for name, value in pairs(vars) do
    if value ~= false and env.is_secret(name) then
      value = env.MASK
    end
    copy[name] = value
  end
  return copy
end

-- Return text with every occurrence of the values in secrets replaced by
-- env.MASK. Values shorter than MIN_MASKED_LENGTH are left alone.
function env.mask_text(text, secrets)
  if type(text) ~= "string" or secrets == nil then
    return text
  end
  for _, secret in ipairs(secrets) do
    if #secret >= MIN_MASKED_LENGTH then
      local from = 1
      while true do
        local start, stop = text:find(secret, from, true)
        if start == nil then
          break
        end
        text = text:sub(1, start - 1) .. env.MASK .. text:sub(stop + 1)
        from = start + #env.MASK
      end
    end
  end
  return text
end

-- Store the instance's passphrase setting; check it first.
function env.attach(inst, passphrase)
  if passphrase ~= nil and (type(passphrase) ~= "string"
                            or passphrase:find("\0", 1, true)) then
    errors.usage("new", "setting 'passphrase' must be a string without NUL"
      .. " bytes, got %s", errors.describe(passphrase))
  end
  for _, name in ipairs(PASSPHRASE_NAMES) do
    if passphrase ~= nil and inst.env[name] then
      errors.usage("new", "setting 'passphrase' and env %s both choose a"
        .. " passphrase source; keep one of them", name)
    end
  end
  private[inst] = { passphrase = passphrase, overlay = {}, last_set = {} }
end

local function state_of(inst)
  local state = private[inst]
  if state == nil then
    state = { overlay = {}, last_set = {} }
    private[inst] = state
  end
  return state
end

-- Return the instance's environment before the call's own `env`: the
-- host's, the instance's `env`, and the set_environ changes.
local function instance_vars(inst)
  local vars = env.apply(env.host(), inst.env)
  return env.apply(vars, state_of(inst).overlay)
end

-- Return the list of { name, value } that set_environ's argument asks
-- for: a .env file (filename), a table (dictionary) or names, in that
-- order of precedence; the nearest .env file when args is empty.
local function environ_source(inst, args)
  local base = instance_vars(inst)
  if args.filename ~= nil then
    if type(args.filename) ~= "string" then
      errors.usage("set_environ", "filename must be a path, got %s",
        errors.describe(args.filename))
    end
    return dotenv.load(args.filename, base)
  end
  local source = args
  if args.dictionary ~= nil then
    if type(args.dictionary) ~= "table" then
      errors.usage("set_environ", "dictionary must be a table of NAME = value,"
        .. " got %s", errors.describe(args.dictionary))
    end
    source = args.dictionary
  end
  if next(source) == nil and source == args then
    local cwd, message = core.realpath(".")
    if cwd == nil then
      errors.usage("set_environ", "cannot find the current directory: %s", message)
    end
    local path = dotenv.find(cwd)
    if path == nil then
      errors.usage("set_environ", "no .env file in %s or any directory above it;"
        .. " give filename = PATH, dictionary = { ... } or NAME = value", cwd)
    end
    return dotenv.load(path, base)
  end
  local list = {}
  for name, value in pairs(source) do
    local what = source == args and "set_environ" or "set_environ dictionary"
    check_name("set_environ", name, what)
    local kind = type(value)
    if kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
      errors.usage("set_environ", "%s value of %s must be a string, a number or a"
        .. " boolean, got %s", what, name, kind)
    end
    value = stringify(value)
    if value:find("\0", 1, true) then
      errors.usage("set_environ", "%s value of %s contains a NUL byte", what, name)
    end
    list[#list + 1] = { name = name, value = value }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- Set variables for the instance's children (borgapi's set_environ):
-- set_environ{ filename = PATH }, set_environ{ dictionary = { ... } },
-- set_environ{ NAME = value, ... } or set_environ() for the nearest .env
-- file. Nothing is set when the source is bad. Returns the names set.
function env.set_environ(inst, args)
  if args == nil then
    args = {}
  end
  if type(args) ~= "table" then
    errors.usage("set_environ", "expected a table (filename = PATH, dictionary ="
      .. " { ... } or NAME = value), got %s", errors.describe(args))
  end
  local list = environ_source(inst, args)
  local state = state_of(inst)
  local names = {}
  for _, item in ipairs(list) do
    if item.value ~= nil then
      state.overlay[item.name] = item.value
      names[#names + 1] = item.name
    end
  end
  state.last_set = names
  return names
end

-- Remove variables from the instance's children (borgapi's
-- unset_environ): the names given, or with none the names that the last
-- set_environ set. A removed name is gone even when the host or the
-- instance's `env` has it.
function env.unset_environ(inst, ...)
  local state = state_of(inst)
  local names = { ... }
  if select("#", ...) == 0 then
    names = state.last_set
  end
  for i = 1, select("#", ...) do
    check_name("unset_environ", names[i], "unset_environ")
  end
  for _, name in ipairs(names) do
    state.overlay[name] = false
  end
end

-- Return what the instance changes in its children's environment, with
-- secret values masked: { NAME = value } for variables it sets, false
-- for variables it removes. The passphrase setting shows as
-- BORG_PASSPHRASE.
function env.changes(inst)
  local state = state_of(inst)
  local changes = {}
  for name, value in pairs(inst.env) do
    changes[name] = value == false and false or stringify(value)
  end
  for name, value in pairs(state.overlay) do
    changes[name] = value
  end
  if state.passphrase then
    changes.BORG_PASSPHRASE = state.passphrase
  end
  return env.mask(changes)
end

-- Return the passphrase source a layer of variables chooses, as
-- { name = VARIABLE, value = string }, or nil when it names none.
local function layer_source(layer, passphrase, label)
  if passphrase ~= nil then
    return { name = "BORG_PASSPHRASE", value = passphrase,
             origin = "the instance's passphrase setting" }
  end
  for _, name in ipairs(PASSPHRASE_NAMES) do
    local value = layer[name]
    if value ~= nil and value ~= false then
      return { name = name, value = stringify(value), origin = name .. " in " .. label }
    end
  end
  return nil
end

-- Return the passphrase source of the highest layer that names one.
-- A layer that removes the chosen variable removes the source.
local function choose_source(layers)
  local source
  for _, layer in ipairs(layers) do
    local chosen = layer_source(layer.vars, layer.passphrase, layer.label)
    if chosen then
      source = chosen
    elseif source and layer.vars[source.name] == false then
      source = nil
    end
  end
  return source
end

-- Return the data the host reads from its own descriptor fd (the value
-- of an inherited BORG_PASSPHRASE_FD), read once and kept.
local function read_host_fd(command, value)
  local fd = tonumber(value)
  if fd == nil or math.type(fd) ~= "integer" or fd < 0 then
    errors.usage(command, "BORG_PASSPHRASE_FD must be a descriptor number, got %s",
      errors.describe(value))
  end
  if read_fds[fd] == nil then
    local file = io.open("/dev/fd/" .. fd, "rb")
    local data = file and file:read("a")
    if file then
      file:close()
    end
    if data == nil then
      errors.usage(command, "BORG_PASSPHRASE_FD=%d names a descriptor the host"
        .. " cannot read; open it for borglua (for example 5< file) or give the"
        .. " passphrase as the instance's 'passphrase'", fd)
    end
    read_fds[fd] = data:gsub("\n+$", "")
  end
  return read_fds[fd]
end

local function check_passphrase(command, what, value)
  if #value > 65536 then
    errors.usage(command, "the %s is longer than 64 KiB", what)
  end
  if value:find("[\r\n]") then
    errors.usage(command, "the %s contains a line break; borg reads it as text"
      .. " lines and would change it", what)
  end
end

-- Route the passphrases of a command that replaces the key's passphrase
-- (key_change_passphrase, key_migrate_to_repokey). borg reads the
-- current passphrase a second time when it asks for the new one, and a
-- descriptor can be read only once, so both go to borg's stdin as the
-- lines borg's prompts read (Python's getpass reads stdin when there is
-- no terminal): the current one, then the new one twice. A repokey or
-- keyfile key tries the empty passphrase before it reads a line, so an
-- empty current one is not written; the old passphrase key of
-- key_migrate_to_repokey reads a line first. key_migrate_to_repokey keeps
-- the current passphrase when no new one is given, as borg does.
local function route_key_change(child, command, source, new)
  if source and source.name == "BORG_PASSCOMMAND" then
    if new then
      errors.usage(command, "a new passphrase cannot be given while BORG_PASSCOMMAND"
        .. " gives the current one, because borg would run the passcommand for"
        .. " the new one too; give the current one as 'passphrase'")
    end
    child.vars.BORG_PASSCOMMAND = source.value
    return
  end
  local migrate = command == "key_migrate_to_repokey"
  local current = source and source.value
  if migrate and new == nil then
    new = current
  end
  local lines = {}
  if current and (current ~= "" or migrate) then
    check_passphrase(command, "passphrase", current)
    lines[#lines + 1] = current
  end
  if new then
    check_passphrase(command, "new passphrase", new)
    lines[#lines + 1] = new
    lines[#lines + 1] = new
  end
  if #lines > 0 then
    child.stdin = table.concat(lines, "\n") .. "\n"
  end
end

-- Build the environment of one child for command. call_env is the
-- call's checked `env`. Returns { vars = { NAME = value }, fds =
-- { [n] = data } or nil, stdin = string or nil, secrets = { values },
-- new_passphrase = boolean, passphrase_origin = text naming where the
-- passphrase came from, or nil }. vars never contains a passphrase.
function env.child(inst, command, call_env)
  local state = state_of(inst)
  local layers = {
    { vars = env.host(), label = "the host's environment" },
    { vars = inst.env, passphrase = state.passphrase, label = "the instance's env" },
    { vars = state.overlay, label = "what set_environ set" },
    { vars = call_env, label = "the call's env" },
  }
  local vars = env.host()
  for i = 2, #layers do
    env.apply(vars, layers[i].vars)
  end
  local source = choose_source(layers)
  local new = vars.BORG_NEW_PASSPHRASE
  for _, name in ipairs(PASSPHRASE_NAMES) do
    vars[name] = nil
  end
  vars.BORG_NEW_PASSPHRASE = nil

  local child = { vars = vars, secrets = {}, new_passphrase = new ~= nil,
                  passphrase_origin = source and source.origin }
  if source and source.name == "BORG_PASSPHRASE_FD" then
    source = { name = "BORG_PASSPHRASE", value = read_host_fd(command, source.value) }
  end
  if command == "init" and new then
    -- borg takes a new key's passphrase from BORG_NEW_PASSPHRASE first.
    source = { name = "BORG_PASSPHRASE", value = new }
  end
  if source and source.name == "BORG_PASSPHRASE" then
    child.secrets[#child.secrets + 1] = source.value
  end
  if new then
    child.secrets[#child.secrets + 1] = new
  end
  if command == "key_change_passphrase" or command == "key_migrate_to_repokey" then
    route_key_change(child, command, source, new)
  elseif source and source.name == "BORG_PASSCOMMAND" then
    vars.BORG_PASSCOMMAND = source.value
    -- borg quotes the command's words when it fails, and an argument may
    -- be a secret. The program name stays readable.
    child.secrets[#child.secrets + 1] = source.value
    local first = true
    for word in tostring(source.value):gmatch("%S+") do
      if not first then
        child.secrets[#child.secrets + 1] = word
      end
      first = false
    end
  elseif source then
    check_passphrase(command, "passphrase", source.value)
    child.fds = { [env.PASSPHRASE_FD] = source.value }
    vars.BORG_PASSPHRASE_FD = tostring(env.PASSPHRASE_FD)
  end
  return child
end

return env
