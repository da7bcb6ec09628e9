-- Random argument tables against fake-borg, checked by an oracle.
--
-- The oracle below is a second, separate statement of the mapping rules
-- (README "Calling a command"). It reads only the catalogue's data: the
-- options each command accepts, their kinds, types and choices, and how
-- many positionals it takes. For each random call it predicts either a
-- usage error, in which case borg must not start, or the exact argument
-- vector, which fake-borg records.
--
-- FUZZ_SEED and FUZZ_CALLS in the environment choose the seed (default:
-- the time) and the number of calls (default 10000). A failure message
-- starts with the seed, so the run can be repeated.

local borg = require "borg"
local catalogue = require "borg.catalogue"
local helpers = require "helpers"

local CALLS = tonumber(os.getenv("FUZZ_CALLS")) or 10000
local SEED = tonumber(os.getenv("FUZZ_SEED")) or os.time()

-- Commands whose library-added arguments the oracle models.
local COMMANDS = { "benchmark_crud", "break_lock", "check", "compact", "create",
                   "delete", "info", "init", "list", "prune", "rename", "upgrade" }

local LEVELS = { "debug", "info", "warning", "error", "critical" }
local MAX_WORD = 131071 -- Linux's MAX_ARG_STRLEN without the NUL

---------------------------------------------------------------------------
-- The oracle

-- The outcome of a call: { usage = reason } or { argv = list, groups =
-- option words grouped by flag }.
local function usage(reason)
  return { usage = reason }
end

-- Return the argument text of a scalar value, or nil.
local function text_of(value)
  if type(value) == "string" then
    return value
  end
  if math.type(value) == "integer" then
    return tostring(value)
  end
  return nil
end

-- Return the words of one option, or nil and the reason for a usage error.
local function option_words(name, option, value)
  local flag = "--" .. name:gsub("_", "-")
  if option.kind == "flag" then
    if value == true then
      return { flag }
    end
    if value == false then
      return {}
    end
    return nil, "flag with a non-boolean"
  end
  if value == true and option.bare then
    return { flag }
  end
  local values
  if type(value) == "table" then
    if option.kind ~= "repeatable" or getmetatable(value) ~= nil then
      return nil, "table for a single value"
    end
    values = {}
    local count = 0
    for key in pairs(value) do
      if math.type(key) ~= "integer" or key < 1 then
        return nil, "array with a non-index key"
      end
      count = math.max(count, key)
    end
    for i = 1, count do
      if value[i] == nil then
        return nil, "array with a hole"
      end
      values[i] = value[i]
    end
  else
    values = { value }
  end
  local words = {}
  for _, item in ipairs(values) do
    local text = text_of(item)
    if text == nil then
      return nil, "value that is neither string nor integer"
    end
    if option.type == "integer" and not text:match("^%-?%d+$") then
      return nil, "non-integer for an integer option"
    end
    if text:find("\0", 1, true) then
      return nil, "NUL byte in a value"
    end
    if option.choices then
      local valid = false
      for _, choice in ipairs(option.choices) do
        valid = valid or choice == text
      end
      if not valid then
        return nil, "value outside the choices"
      end
    end
    local word = flag .. "=" .. text
    if #word > MAX_WORD then
      return nil, "option word too long"
    end
    words[#words + 1] = word
  end
  return words
end

-- Return the positionals of args, or nil and a reason.
local function positional_list(args)
  local count = 0
  for key in pairs(args) do
    if math.type(key) == "integer" then
      if key < 1 then
        return nil, "index below 1"
      end
      count = math.max(count, key)
    elseif type(key) ~= "string" then
      return nil, "key that is neither string nor integer"
    end
  end
  local list = {}
  for i = 1, count do
    local text = text_of(args[i])
    if text == nil then
      return nil, "positional missing or of a wrong type"
    end
    if text:find("\0", 1, true) then
      return nil, "NUL byte in a positional"
    end
    if text == "--" then
      return nil, "positional \"--\""
    end
    if #text > MAX_WORD then
      return nil, "positional too long"
    end
    list[i] = text
  end
  return list
end

local function count_limits(spec)
  local min, max = 0, 0
  for _, p in ipairs(spec.positionals) do
    min = min + p.min
    max = (max < 0 or p.max < 0) and -1 or max + p.max
  end
  return min, max
end

-- Rewrite the options the way the command's output plan does, or return
-- a usage reason.
local function plan_options(command, options, positionals, stdin)
  if command == "init" and options.encryption == nil then
    options.encryption = "repokey"
  elseif command == "info" then
    options.json = true
  elseif command == "list" then
    local first = positionals[1]
    local archive = type(first) == "string" and first:find("::.") ~= nil
    if options.json or (not options.json_lines and not archive) then
      options.json = true
    else
      options.json_lines = true
    end
  elseif command == "create" then
    if #positionals < 2 and not (options.paths_from_stdin or options.paths_from_command
                                 or options.content_from_command) then
      return "create without a path"
    end
    for i = 2, #positionals do
      if positionals[i] == "-" and not stdin then
        return "\"-\" without stdin"
      end
    end
    if options.paths_from_stdin and not stdin then
      return "paths_from_stdin without stdin"
    end
    if options.stats or options.json then
      options.stats = nil
      options.json = not options.dry_run or nil
    end
  end
  return nil
end

-- Predict the outcome of borg[command](args, run) on an instance of
-- program with no defaults and no options.
local function predict(program, command, args, run)
  if type(args) ~= "table" then
    return usage("arguments that are not a table")
  end
  -- The call's table is read with pairs, so __index never fills a hole.
  local plain = {}
  for key, value in pairs(args) do
    plain[key] = value
  end
  args = plain
  local spec = catalogue.commands[command]
  local positionals, reason = positional_list(args)
  if positionals == nil then
    return usage(reason)
  end
  local options, level = {}, "warning"
  for key, value in pairs(args) do
    if type(key) == "string" and value ~= false then
      if key == "log_level" then
        level = value
      elseif key == "log_json" then
        if type(value) ~= "boolean" then
          return usage("log_json that is not a boolean")
        end
      elseif spec.options[key] == nil then
        return usage("unknown option")
      else
        options[key] = value
      end
    end
  end
  local valid_level = false
  for _, name in ipairs(LEVELS) do
    valid_level = valid_level or name == level
  end
  if not valid_level then
    return usage("invalid log_level")
  end
  for name, value in pairs(options) do
    local _, why_not = option_words(name, spec.options[name], value)
    if why_not then
      return usage(why_not)
    end
  end
  local min, max = count_limits(spec)
  if #positionals < min or (max >= 0 and #positionals > max) then
    return usage("wrong number of positionals")
  end
  reason = plan_options(command, options, positionals, run and run.stdin)
  if reason then
    return usage(reason)
  end

  local argv = { program }
  for _, word in ipairs(spec.words) do
    argv[#argv + 1] = word
  end
  argv[#argv + 1] = "--log-json"
  if level == "debug" or level == "info" then
    argv[#argv + 1] = "--" .. level
  end
  local groups = {}
  for name, value in pairs(options) do
    local words = option_words(name, spec.options[name], value)
    if #words > 0 then
      groups[words[1]:match("^[^=]+")] = words
    end
  end
  return { argv = argv, groups = groups, positionals = positionals }
end

-- Compare the recorded argv with the prediction; return nil when they
-- match, else a description of the first difference. Options may come
-- in any order, but the values of one option keep theirs.
local function compare(expected, recorded)
  local head = #expected.argv
  for i = 1, head do
    if recorded[i] ~= expected.argv[i] then
      return string.format("word %d is %q, expected %q", i, tostring(recorded[i]),
        expected.argv[i])
    end
  end
  local groups, i = {}, head + 1
  while recorded[i] ~= nil and recorded[i] ~= "--" do
    local flag = recorded[i]:match("^[^=]+")
    groups[flag] = groups[flag] or {}
    table.insert(groups[flag], recorded[i])
    i = i + 1
  end
  for flag, words in pairs(expected.groups) do
    local got = groups[flag] or {}
    if #got ~= #words then
      return string.format("%s given %d times, expected %d", flag, #got, #words)
    end
    for k = 1, #words do
      if got[k] ~= words[k] then
        return string.format("%s value %d differs (%d bytes, expected %d)", flag, k,
          #got[k], #words[k])
      end
    end
  end
  for flag in pairs(groups) do
    if expected.groups[flag] == nil then
      return "unexpected option " .. flag
    end
  end
  local tail = {}
  if recorded[i] == "--" then
    tail = { table.unpack(recorded, i + 1) }
  end
  if #expected.positionals == 0 and recorded[i] == "--" then
    return "a \"--\" without positionals"
  end
  if #tail ~= #expected.positionals then
    return string.format("%d positionals, expected %d", #tail, #expected.positionals)
  end
  for k, text in ipairs(expected.positionals) do
    if tail[k] ~= text then
      return string.format("positional %d differs", k)
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- The generator

local random = math.random

local function pick(list)
  return list[random(#list)]
end

local ALPHABET = { "a", "z", "0", "-", "_", ":", "/", "=", " ", "*", "\0", "\n",
                   "\255", "\195\169", "::", "--", "\"", "'", "%", "{now}" }

local function random_string()
  local roll = random(100)
  if roll <= 2 then
    return string.rep(pick { "x", "\0", "y" }, pick { 131070, 131072, 1048576 })
  elseif roll <= 6 then
    return pick { "", "-", "--", "::", "-x", "repo::a", "/r::", "12", "-3", "none",
                  "repokey", "lz4", "auto", "zstd,3" }
  end
  local parts = {}
  for i = 1, random(0, 12) do
    parts[i] = pick(ALPHABET)
  end
  return table.concat(parts)
end

local random_value

local function random_table(depth)
  local roll = random(10)
  local t = {}
  if roll <= 5 then
    for i = 1, random(0, 4) do
      t[i] = random_value(depth + 1, true)
    end
  elseif roll <= 7 then
    t[random(-1, 5)] = random_value(depth + 1, true)
    t[random(1, 3)] = random_value(depth + 1, true)
  elseif roll <= 8 then
    -- deep nesting
    local inner = t
    for _ = 1, random(10, 300) do
      inner[1] = {}
      inner = inner[1]
    end
  else
    t[random_string()] = random_value(depth + 1, true)
  end
  if random(8) == 1 then
    setmetatable(t, pick {
      { __index = function() return "from __index" end },
      { __tostring = function() return "a table" end },
      { __len = function() return 2 end },
      { __name = "thing" },
    })
  end
  return t
end

-- Return a random value; scalar_bias makes scalars more likely.
function random_value(depth, scalar_bias)
  local roll = random(scalar_bias and 12 or 14)
  if roll <= 2 then
    return random(2) == 1
  elseif roll <= 4 then
    return pick { 0, 1, -1, 7, 2 ^ 53, math.maxinteger, math.mininteger, random(-1e6, 1e6) }
  elseif roll <= 5 then
    return pick { 0.5, -2.25, 3.0, 1e300, math.huge, -math.huge, 0 / 0 }
  elseif roll <= 10 then
    return random_string()
  elseif roll <= 11 and depth < 3 then
    return random_table(depth)
  elseif roll <= 12 then
    return pick { print, coroutine.create(print), io.stdout }
  end
  return random_table(depth)
end

-- Return a random key for the table of command's arguments.
local function random_key(names)
  local roll = random(100)
  if roll <= 55 then
    return pick(names)
  elseif roll <= 75 then
    return random(-1, 6)
  elseif roll <= 80 then
    return pick { "log_level", "log_json" }
  elseif roll <= 90 then
    return random_string()
  end
  return pick { 1.5, true, {}, -0.5 }
end

-- Return a good value for option, so that many calls get past the checks.
local function fitting_value(option)
  if option.kind == "flag" then
    return random(3) > 1
  end
  if option.choices then
    return pick(option.choices)
  end
  local function one()
    if option.type == "integer" then
      return random(2) == 1 and random(-5, 99) or tostring(random(0, 99))
    end
    return pick { "x", "-y", "a b", "caf\233", "{hostname}", "*.tmp", "", "=", "1" }
  end
  if option.kind == "repeatable" and random(2) == 1 then
    local list = {}
    for i = 1, random(0, 3) do
      list[i] = one()
    end
    return list
  end
  return one()
end

-- Return command, args, run for one random call. A third of the calls
-- are clean (catalogue options with fitting values), a third have one
-- random key or value more, and a third are wild, so that both runs and
-- usage errors are common.
local function random_call(names_of)
  local command = pick(COMMANDS)
  local spec = catalogue.commands[command]
  if random(60) == 1 then
    return command, pick { nil, 5, "repo", true }, nil
  end
  local style = pick { "clean", "perturbed", "wild" }
  local args = {}
  local min, max = count_limits(spec)
  local positionals = random(min, max < 0 and min + 3 or max)
  if style == "wild" and random(2) == 1 then
    positionals = random(0, 4)
  end
  for i = 1, positionals do
    args[i] = (style == "wild" and random(4) == 1) and random_value(1, true)
      or pick { "/r", "/r::a", "-", "src", "-dash", "caf\233", "a b", "{now}" }
  end
  for _ = 1, random(0, 4) do
    local key = pick(names_of[command])
    args[key] = fitting_value(spec.options[key])
  end
  local extra = style == "perturbed" and 1 or style == "wild" and random(1, 5) or 0
  for _ = 1, extra do
    local key = random_key(names_of[command])
    if key == "log_level" and random(2) == 1 then
      args[key] = pick(LEVELS)
    else
      args[key] = random_value(1, false)
    end
  end
  if random(6) == 1 then
    setmetatable(args, { __index = function() return "from __index" end })
  end
  local run = random(3) == 1 and { stdin = "data" } or nil
  return command, args, run
end

---------------------------------------------------------------------------

describe("fuzzed argument tables", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("map exactly or raise a usage error before borg starts", function()
    local api, argv_path = helpers.fake_instance(dir,
      { env = { FAKE_BORG_STDOUT = "{}" } })
    local names_of = {}
    for _, command in ipairs(COMMANDS) do
      names_of[command] = {}
      for name in pairs(catalogue.commands[command].options) do
        table.insert(names_of[command], name)
      end
      table.sort(names_of[command])
    end
    math.randomseed(SEED)
    local counts, reasons = { usage = 0, ran = 0 }, {}
    for n = 1, CALLS do
      local command, args, run = random_call(names_of)
      local context = string.format("seed %d, call %d (%s)", SEED, n, command)
      local expected = predict(helpers.fake_borg, command, args, run)
      local calls_before = helpers.recorded_calls(argv_path)
      os.remove(argv_path)
      local ok, err = pcall(api[command], args, run)
      local spawned = helpers.recorded_calls(argv_path) - calls_before
      if expected.usage then
        assert(not ok, context .. ": expected a usage error (" .. expected.usage
          .. "), but the call succeeded")
        assert(borg.is_error(err) and err.kind == "usage", context .. ": expected a"
          .. " usage error (" .. expected.usage .. "), got " .. tostring(err))
        assert(spawned == 0, context .. ": borg ran despite the usage error")
        counts.usage = counts.usage + 1
        reasons[expected.usage] = (reasons[expected.usage] or 0) + 1
      else
        assert(ok or (borg.is_error(err) and err.kind == "decode"),
          context .. ": expected a run, got " .. tostring(err))
        assert(spawned == 1, context .. ": borg ran " .. spawned .. " times")
        local recorded = helpers.recorded_argv(argv_path)
        table.insert(recorded, 1, helpers.fake_borg)
        local difference = compare(expected, recorded)
        assert(difference == nil, context .. ": " .. tostring(difference))
        counts.ran = counts.ran + 1
      end
    end
    print(string.format("\nfuzz: %d calls with seed %d: %d ran, %d usage errors", CALLS,
      SEED, counts.ran, counts.usage))
    if os.getenv("FUZZ_REASONS") then
      for reason, count in pairs(reasons) do
        print(count, reason)
      end
    end
    -- The generator must reach both sides, or the spec proves little.
    assert.is_true(counts.ran > CALLS // 10, "only " .. counts.ran .. " calls ran")
    assert.is_true(counts.usage > CALLS // 10, "only " .. counts.usage .. " usage errors")
  end)
end)
