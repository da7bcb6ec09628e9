-- Turning a call's Lua table into borg's argument vector.
--
-- The array part contains the positional arguments, and the hash part
-- contains long options with underscores for dashes. true gives a bare flag, false
-- gives nothing, a string or an integer gives --name=value, and an array
-- gives a repeatable option once per value. Positionals follow "--", so a
-- path that starts with "-" is never read as an option. Every mistake
-- raises a usage error before anything runs.

local errors = require "borg.errors"

local argv = {}

-- Keys of a call's second table (how to run the command), which belong
-- there and not among borg's options.
argv.RUN_KEYS = { "confirm", "cwd", "env", "on_file", "on_log", "on_progress",
                  "on_prompt", "stdin", "stdout", "timeout" }
local IS_RUN_KEY = {}
for _, name in ipairs(argv.RUN_KEYS) do
  IS_RUN_KEY[name] = true
end

local describe = errors.describe

-- Return value as argument text, or nil when it is not a string or an
-- integer.
local function scalar_text(value)
  if type(value) == "string" then
    return value
  end
  if math.type(value) == "integer" then
    return string.format("%d", value)
  end
  return nil
end

local function check_text(command, what, text)
  if text:find("\0", 1, true) then
    errors.usage(command, "%s contains a NUL byte, which cannot be passed to borg"
      .. " in an argument vector", what)
  end
end

-- Linux rejects an argument longer than MAX_ARG_STRLEN (32 pages of 4 KiB,
-- the terminating NUL included): execve would fail with E2BIG.
argv.MAX_WORD = 32 * 4096 - 1

local function check_length(command, what, word)
  if #word > argv.MAX_WORD then
    errors.usage(command, "%s is %d bytes long, but Linux passes at most %d bytes in"
      .. " one argument (give long lists through a file, as with patterns_from)", what,
      #word, argv.MAX_WORD)
  end
end

-- Return "--name=text" for option name after checking its length.
local function option_word(command, name, flag, text)
  local word = flag .. "=" .. text
  check_length(command, "option '" .. name .. "'", word)
  return word
end

-- Return the positional arguments of args as a list of strings.
local function positionals(command, args)
  local n = 0
  for key in pairs(args) do
    if math.type(key) == "integer" then
      if key < 1 then
        errors.usage(command, "positional arguments must be at indexes 1..n, got"
          .. " index %d", key)
      end
      n = math.max(n, key)
    elseif type(key) ~= "string" then
      errors.usage(command, "option names must be strings, got a %s key", describe(key))
    end
  end
  local list = {}
  for i = 1, n do
    local value = args[i]
    if value == nil then
      errors.usage(command, "positional argument %d is missing (nil in the middle of"
        .. " the argument list)", i)
    end
    local text = scalar_text(value)
    if text == nil and type(value) == "table" then
      errors.usage(command, "positional argument %d is a table; run options go in a"
        .. " second table after the arguments, as in borg.%s({ ... }, { timeout = 60 })",
        i, command)
    elseif text == nil then
      errors.usage(command, "positional argument %d must be a string or an integer,"
        .. " got %s", i, describe(value))
    end
    check_text(command, "positional argument " .. i, text)
    check_length(command, "positional argument " .. i, text)
    if text == "--" then
      -- Python's argparse drops a "--" even after the separator, so borg
      -- would silently skip it.
      errors.usage(command, "positional argument %d is \"--\", which borg's parser"
        .. " drops; write \"./--\" for a file of that name", i)
    end
    list[i] = text
  end
  return list
end

local function option_names(spec)
  local names = {}
  for name in pairs(spec.options) do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function unknown_option(command, spec, name)
  if IS_RUN_KEY[name] then
    errors.usage(command, "'%s' is a run option: give it in a second table after"
      .. " the arguments, as in borg.%s({ ... }, { %s = ... })", name, command, name)
  end
  local names = option_names(spec)
  local guess = errors.nearest(name, names)
  if guess then
    errors.usage(command, "unknown option '%s' (did you mean '%s'?)", name, guess)
  end
  errors.usage(command, "unknown option '%s' (borg %s accepts: %s)", name,
    table.concat(spec.words, " "), table.concat(names, ", "))
end

local function value_text(command, name, option, value)
  local text = scalar_text(value)
  if text == nil then
    errors.usage(command, "option '%s' expects %s, got %s", name,
      option.type == "integer" and "an integer" or "a string or an integer",
      describe(value))
  end
  if option.type == "integer" and not text:find("^%-?%d+$") then
    errors.usage(command, "option '%s' expects an integer, got %s", name,
      describe(value))
  end
  check_text(command, "option '" .. name .. "'", text)
  if option.choices then
    local ok = false
    for _, choice in ipairs(option.choices) do
      ok = ok or choice == text
    end
    if not ok then
      errors.usage(command, "option '%s' must be one of %s, got %s", name,
        table.concat(option.choices, ", "), describe(value))
    end
  end
  return text
end

-- Append the arguments of one option to list.
local function add_option(list, command, name, option, value)
  local flag = "--" .. name:gsub("_", "-")
  if option.kind == "flag" then
    if type(value) ~= "boolean" then
      errors.usage(command, "option '%s' is a flag and takes true or false, got %s",
        name, describe(value))
    end
    if value then
      list[#list + 1] = flag
    end
    return
  end
  if value == false then
    return
  end
  if value == true and option.bare then
    list[#list + 1] = flag
    return
  end
  if option.kind == "repeatable" and type(value) == "table"
      and getmetatable(value) == nil then
    local n = #value
    for key in pairs(value) do
      if math.type(key) ~= "integer" or key < 1 or key > n then
        errors.usage(command, "option '%s' takes an array of values, got a table"
          .. " with key %s", name, describe(key))
      end
    end
    for i = 1, n do
      list[#list + 1] = option_word(command, name, flag,
        value_text(command, name, option, value[i]))
    end
    return
  end
  if type(value) == "table" then
    errors.usage(command, "option '%s' takes a single value, got a table%s", name,
      option.kind == "repeatable" and " with a metatable" or "")
  end
  list[#list + 1] = option_word(command, name, flag, value_text(command, name, option, value))
end

-- Return the sorted option names of args that spec accepts; names listed
-- in skip are left out. An unknown name raises a usage error.
function argv.check_names(command, spec, args, skip)
  local names = {}
  for key in pairs(args) do
    if type(key) == "string" and not (skip and skip[key]) then
      if spec.options[key] == nil then
        unknown_option(command, spec, key)
      end
      names[#names + 1] = key
    end
  end
  table.sort(names)
  return names
end

-- Check the number of positionals against what borg's parser needs. (A
-- location that BORG_REPO can supply is optional in the catalogue.)
local function check_count(command, spec, given)
  local min, max = 0, 0
  for _, p in ipairs(spec.positionals) do
    min = min + p.min
    if max >= 0 then
      max = p.max < 0 and -1 or max + p.max
    end
  end
  if max >= 0 and given > max then
    errors.usage(command, "takes at most %d positional argument%s, got %d", max,
      max == 1 and "" or "s", given)
  end
  if given < min then
    local missing, count = spec.positionals[1], 0
    for _, p in ipairs(spec.positionals) do
      count = count + p.min
      if count > given then
        missing = p
        break
      end
    end
    errors.usage(command, "the positional argument '%s' is missing (borg %s needs"
      .. " at least %d)", missing.name, table.concat(spec.words, " "), min)
  end
end

-- Build the argument vector (without the program name) for the call's
-- table args and the catalogue entry spec. extra holds the arguments the
-- library adds after the command words, such as --log-json. skip names
-- the keys of args that are not borg options.
function argv.build(command, spec, args, extra, skip)
  local list = {}
  for _, word in ipairs(spec.words) do
    list[#list + 1] = word
  end
  for _, arg in ipairs(extra) do
    list[#list + 1] = arg
  end
  local positional = positionals(command, args)
  for _, name in ipairs(argv.check_names(command, spec, args, skip)) do
    add_option(list, command, name, spec.options[name], args[name])
  end
  check_count(command, spec, #positional)
  if #positional > 0 then
    list[#list + 1] = "--"
    for _, text in ipairs(positional) do
      list[#list + 1] = text
    end
  end
  return list
end

return argv
