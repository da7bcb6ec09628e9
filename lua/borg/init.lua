-- The borg library: one function per borg command, and instances with
-- their own defaults and environment.
--
--   local borg = require "borg"
--   local stats, run = borg.create({ "/srv/repo::{now}", "/etc", json = true },
--                                  { timeout = 3600 })
--
-- A call returns result, run. Misuse raises a "usage" error before borg
-- starts; a failed borg raises an error object (see borg.errors).

local borg2 = require "borg.borg2"
local call = require "borg.call"
local catalogue = require "borg.catalogue"
local env = require "borg.env"
local errors = require "borg.errors"
local format = require "borg.format"
local iter = require "borg.iter"
local probe_version = require "borg.version"
local scheduler = require "borg.scheduler"

local borg = {}
borg._VERSION = "borglua 0.1.0"

-- borgapi's command names. Each has an entry of the same name in the 1.2
-- catalogue; the borg 2 commands added below are in the borg 2 catalogue.
local COMMAND_NAMES = {
  "benchmark_crud", "break_lock", "check", "compact", "config", "create",
  "delete", "diff", "export_tar", "extract", "import_tar", "info", "init",
  "key_change_passphrase", "key_export", "key_import",
  "key_migrate_to_repokey", "list", "mount", "prune", "recreate", "rename",
  "serve", "umount", "upgrade", "with_lock",
}
-- Commands that only borg 2 has (calling them on 1.2 is a usage error).
table.move(borg2.ONLY, 1, #borg2.ONLY, #COMMAND_NAMES + 1, COMMAND_NAMES)
local IS_COMMAND = {}
for _, name in ipairs(COMMAND_NAMES) do
  IS_COMMAND[name] = true
end

local INSTANCE_KEYS = { "borg", "defaults", "env", "log_json", "log_level",
                        "options", "passphrase", "warm" }

-- Instance methods about the environment; each accepts inst:name(...)
-- and inst.name(...).
local ENVIRON_METHODS = {
  environ = env.changes,
  set_environ = env.set_environ,
  unset_environ = env.unset_environ,
}

local describe_type = errors.describe

-- Return true when some call of this process ended with borg's warning
-- status (rc 1). The borglua program exits with 1 in that case.
function borg.warned()
  return call.warned()
end


local Instance = {}

-- Return the function for command `name` bound to inst; it accepts both
-- inst:name{...} and inst.name{...}.
local function bound(inst, name)
  return function(first, ...)
    if first == inst then
      return call.run(inst, name, ...)
    end
    return call.run(inst, name, first, ...)
  end
end

Instance.__index = function(inst, name)
  if IS_COMMAND[name] then
    local fn = bound(inst, name)
    rawset(inst, name, fn)
    return fn
  end
  if name == "parallel" then
    -- The functions choose their instances; inst:parallel{} is there so
    -- that a script can use one name for everything.
    return function(first, ...)
      if first == inst then
        return scheduler.parallel(...)
      end
      return scheduler.parallel(first, ...)
    end
  end
  if name == "iter" then
    local bound = iter.bind(inst)
    rawset(inst, name, bound)
    return bound
  end
  if ENVIRON_METHODS[name] then
    local method = ENVIRON_METHODS[name]
    return function(first, ...)
      if first == inst then
        return method(inst, ...)
      end
      return method(inst, first, ...)
    end
  end
  if name == "version" then
    return function()
      return probe_version(inst.program, env.apply(env.host(), inst.env))
    end
  end
  if type(name) == "string" and not name:find("^_") then
    local guess = errors.nearest(name, COMMAND_NAMES)
    errors.usage(nil, "unknown command '%s'%s", name,
      guess and string.format(" (did you mean '%s'?)", guess) or "")
  end
  return nil
end

-- Check that every name in options is accepted by some command, so that
-- a typo is reported even though options are dropped where a command
-- does not accept them.
local function check_option_names(options)
  local known, all = { log_level = true, log_json = true }, {}
  for _, command in ipairs(COMMAND_NAMES) do
    for name in pairs(borg2.option_names(command)) do
      if not known[name] then
        known[name] = true
        all[#all + 1] = name
      end
    end
  end
  for name in pairs(options) do
    if type(name) ~= "string" or not known[name] then
      local guess = type(name) == "string" and errors.nearest(name, all)
      errors.usage("new", "option '%s' in setting 'options' is not accepted by any"
        .. " borg command%s", tostring(name),
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
  end
end

-- Check the option names in defaults[command] against the command.
local function check_defaults(command, values)
  local accepted = borg2.option_names(command)
  for name in pairs(values) do
    if type(name) == "string" and not accepted[name]
        and name ~= "log_level" and name ~= "log_json" then
      local names = {}
      for option in pairs(accepted) do
        names[#names + 1] = option
      end
      local guess = errors.nearest(name, names)
      errors.usage("new", "defaults.%s has unknown option '%s'%s", command, name,
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
  end
end

local function check_instance(config)
  if config == nil then
    return {}
  end
  if type(config) ~= "table" then
    errors.usage("new", "expected a table of settings, got %s", describe_type(config))
  end
  for key in pairs(config) do
    local known = false
    for _, name in ipairs(INSTANCE_KEYS) do
      known = known or name == key
    end
    if not known then
      local guess = type(key) == "string" and errors.nearest(key, INSTANCE_KEYS)
      errors.usage("new", "unknown setting '%s'%s", tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or
        " (known: " .. table.concat(INSTANCE_KEYS, ", ") .. ")")
    end
  end
  for _, key in ipairs { "defaults", "options" } do
    if config[key] ~= nil and type(config[key]) ~= "table" then
      errors.usage("new", "setting '%s' must be a table, got %s", key,
        describe_type(config[key]))
    end
  end
  if config.borg ~= nil and type(config.borg) ~= "string" then
    errors.usage("new", "setting 'borg' must be the program to run, got %s",
      describe_type(config.borg))
  end
  if config.warm ~= nil and type(config.warm) ~= "boolean" then
    errors.usage("new", "setting 'warm' must be true or false, got %s",
      describe_type(config.warm))
  end
  if config.log_level ~= nil and not call.LOG_LEVELS[config.log_level] then
    errors.usage("new", "log_level must be one of debug, info, warning, error,"
      .. " critical, got %s", describe_type(config.log_level))
  end
  check_option_names(config.options or {})
  for command, values in pairs(config.defaults or {}) do
    if not IS_COMMAND[command] then
      local guess = errors.nearest(tostring(command), COMMAND_NAMES)
      errors.usage("new", "defaults for unknown command '%s'%s", tostring(command),
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
    if type(values) ~= "table" then
      errors.usage("new", "defaults.%s must be a table, got %s", command,
        describe_type(values))
    end
    check_defaults(command, values)
  end
  return config
end

-- Return a new instance: its own program, defaults per command, options
-- for every command that accepts them, log level and environment.
function borg.new(config)
  config = check_instance(config)
  local inst = {
    program = config.borg or "borg",
    defaults = config.defaults or {},
    options = config.options or {},
    log_level = config.log_level or "warning",
    log_json = config.log_json == true,
    env = env.check("new", config.env, "setting 'env'"),
    warm = config.warm ~= false,
  }
  env.attach(inst, config.passphrase)
  return setmetatable(inst, Instance)
end

-- Return the sorted option names that command accepts.
function borg.options(command)
  local spec = catalogue.commands[command] or borg2.catalogue.commands[command]
  if not IS_COMMAND[command] or spec == nil then
    errors.usage("options", "unknown command '%s'", tostring(command))
  end
  local names = {}
  for name in pairs(spec.options) do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

-- Run functions side by side; see borg.scheduler.
function borg.parallel(functions, options)
  return scheduler.parallel(functions, options)
end

borg.commands = COMMAND_NAMES
borg.format = format
borg.errors = errors
borg.is_error = errors.is
borg.retryable = errors.retryable
-- Masking of secret values for printing environments (plan listings).
borg.env = { mask = env.mask, mask_text = env.mask_text, is_secret = env.is_secret,
             MASK = env.MASK }

local default = borg.new()

-- Return the version of the default instance's borg program.
function borg.version()
  return probe_version(default.program, env.apply(env.host(), default.env))
end

-- Switches of the whole host, kept in call.settings: borg.planning (plan
-- mode, set by `borglua --plan`) and borg.dry_run (--dry-run for every
-- command that has it).
local SWITCHES = { planning = true, dry_run = true }

return setmetatable(borg, {
  __newindex = function(module, name, value)
    if SWITCHES[name] then
      if type(value) ~= "boolean" then
        errors.usage(nil, "borg.%s must be true or false, got %s", name,
          describe_type(value))
      end
      call.settings[name] = value
      return
    end
    rawset(module, name, value)
  end,
  __index = function(module, name)
    if SWITCHES[name] then
      return call.settings[name]
    end
    if IS_COMMAND[name] then
      local fn = function(first, ...)
        if first == module then
          return call.run(default, name, ...)
        end
        return call.run(default, name, first, ...)
      end
      rawset(module, name, fn)
      return fn
    end
    return default[name]
  end,
})
