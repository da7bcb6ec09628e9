-- Support for the interactive prompt: showing values to a person, and
-- completing names on the Tab key. The line editing itself is C
-- (src/repl.c); everything here is plain Lua and also works from stock
-- Lua as require "borg.repl".
--
--   repl.show(value, ...)   -> text of the values, tables indented
--   repl.complete(text)     -> text to insert, listing of candidates
--
-- Nothing here raises on odd values: a table with a failing __tostring
-- or a metatable that hides itself is still shown.

local call = require "borg.call"
local catalogue = require "borg.catalogue"
local env = require "borg.env"
local errors = require "borg.errors"

local repl = {}

-- Limits of repl.show: items shown of a long array, nesting depth, bytes
-- of a string, and the line width that a table must fit to stay on one
-- line.
repl.settings = { max_items = 20, max_depth = 8, max_string = 400, width = 78 }

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
  "true", "until", "while",
}
local IS_KEYWORD = {}
for _, word in ipairs(KEYWORDS) do
  IS_KEYWORD[word] = true
end

local ESCAPES = { ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t", ["\v"] = "\\v", ["\\"] = "\\\\",
                  ['"'] = '\\"' }

-- Return s as a double-quoted Lua string literal on one line. A string
-- longer than the limit is cut and its full length given.
local function quote(s)
  local limit = repl.settings.max_string
  local cut = #s > limit
  local text = cut and s:sub(1, limit) or s
  text = text:gsub('[%c"\\\128-\255]', function(c)
    return ESCAPES[c] or string.format("\\%d", c:byte())
  end)
  if cut then
    return string.format('"%s"... (%d bytes)', text, #s)
  end
  return '"' .. text .. '"'
end

local function is_identifier(key)
  return type(key) == "string" and key:find("^[%a_][%w_]*$") ~= nil
    and not IS_KEYWORD[key]
end

-- Return tostring(value), or "<type>" when its __tostring fails.
local function safe_text(value)
  local ok, text = pcall(tostring, value)
  return ok and type(text) == "string" and text or ("<" .. type(value) .. ">")
end

-- Order keys: numbers first, then strings, then the rest by their text.
local TYPE_RANK = { number = 1, string = 2, boolean = 3 }

local function key_before(a, b)
  local ra, rb = TYPE_RANK[type(a)] or 4, TYPE_RANK[type(b)] or 4
  if ra ~= rb then
    return ra < rb
  end
  if ra <= 2 then
    return a < b
  end
  return safe_text(a) < safe_text(b)
end

local function show_key(key)
  if is_identifier(key) then
    return key
  elseif type(key) == "string" then
    return "[" .. quote(key) .. "]"
  end
  return "[" .. safe_text(key) .. "]"
end

-- Return the text of an error object's __tostring, or nil when it fails.
local function error_message(value)
  local ok, text = pcall(tostring, value)
  return ok and text or nil
end

-- Return value as text when it is a "NAME=value" entry of an environment
-- list whose NAME is secret, with the value masked; nil otherwise.
local function masked_entry(value)
  local name = type(value) == "string" and value:match("^([%w_]+)=")
  if name and env.is_secret(name) then
    return quote(name .. "=" .. env.MASK)
  end
  return nil
end

local show_value

-- Return the length of the array part 1..n (stopping at the first nil)
-- and the other keys, sorted.
local function split_keys(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do
    n = n + 1
  end
  local keys = {}
  for key in next, t do
    if not (math.type(key) == "integer" and key >= 1 and key <= n) then
      keys[#keys + 1] = key
    end
  end
  table.sort(keys, key_before)
  return n, keys
end

-- Return the items of table t as lines of text, each one value or
-- "key = value", rendered at the given depth.
local function table_items(t, depth, seen, skip)
  local n, keys = split_keys(t)
  local items = {}
  local shown = math.min(n, repl.settings.max_items)
  for i = 1, shown do
    local value = rawget(t, i)
    items[#items + 1] = masked_entry(value) or show_value(value, depth + 1, seen)
  end
  if shown < n then
    items[#items + 1] = string.format("... %d more items (%d in all)", n - shown, n)
  end
  for _, key in ipairs(keys) do
    if not (skip and skip[key]) then
      local value = rawget(t, key)
      -- A passphrase in an instance's env is not shown on the screen.
      local text = type(value) == "string" and type(key) == "string"
        and env.is_secret(key) and '"' .. env.MASK .. '"' or show_value(value, depth + 1, seen)
      items[#items + 1] = show_key(key) .. " = " .. text
    end
  end
  return items
end

-- Return the items joined into a table constructor: on one line when it
-- fits the width and no item spans lines, else one item per line,
-- indented by two spaces per depth.
local function join_items(items, depth)
  if #items == 0 then
    return "{}"
  end
  local one_line = "{ " .. table.concat(items, ", ") .. " }"
  if not one_line:find("\n", 1, true)
      and #one_line + 2 * depth <= repl.settings.width then
    return one_line
  end
  local pad = string.rep("  ", depth + 1)
  local lines = {}
  for i, item in ipairs(items) do
    local last = i == #items or item:find("^%.%.%. %d+ more items")
    lines[i] = pad .. item .. (last and "" or ",")
  end
  return "{\n" .. table.concat(lines, "\n") .. "\n" .. string.rep("  ", depth) .. "}"
end

local function show_table(t, depth, seen)
  if seen[t] then
    return "<cycle>"
  end
  if depth >= repl.settings.max_depth then
    return "{...}"
  end
  seen[t] = true
  local text
  local mt = debug.getmetatable(t)
  local own_text
  if not errors.is(t) and type(mt) == "table" and rawget(mt, "__tostring") then
    -- An object of its own kind (a mount handle, an iteration) shows as
    -- its text, not its fields, which hold the call's passphrase.
    local ok, result = pcall(tostring, t)
    own_text = ok and type(result) == "string" and result or nil
  end
  if own_text then
    text = own_text
  elseif errors.is(t) then
    -- An error object: its message, then its other fields.
    local message = error_message(t) or tostring(rawget(t, "message"))
    text = message .. " " .. join_items(table_items(t, depth, seen,
      { message = true, hint = true }), depth)
  else
    text = join_items(table_items(t, depth, seen), depth)
  end
  seen[t] = nil
  return text
end

function show_value(value, depth, seen)
  local kind = type(value)
  if kind == "string" then
    return quote(value)
  elseif kind == "table" then
    return show_table(value, depth, seen)
  elseif kind == "number" or kind == "boolean" or kind == "nil" then
    return tostring(value)
  end
  local ok, text = pcall(tostring, value)
  return ok and text or ("<" .. kind .. ">")
end

-- Return the text of the values for a person: strings quoted, tables as
-- constructors with sorted keys (the array part first and in order),
-- arrays longer than settings.max_items cut with a count, error objects
-- as their message followed by their fields. Several values go on
-- separate lines.
function repl.show(...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[i] = show_value((select(i, ...)), 0, {})
  end
  return table.concat(parts, "\n")
end

-- Return the text of an error raised by a chunk: an error object as
-- "error: " plus repl.show, anything else as its string.
function repl.show_error(err)
  if errors.is(err) then
    return "error: " .. repl.show(err)
  end
  local ok, text = pcall(tostring, err)
  return ok and text or ("(error object is a " .. type(err) .. " value)")
end

-- Clear the interrupt that Ctrl-C during a borg call leaves behind, so
-- that it stops that call only and later calls of the session run.
function repl.forget_interrupt()
  local ok, core = pcall(require, "borg.core")
  if ok then
    core.forget_interrupt()
  end
end


-- ---- completion -------------------------------------------------------

-- Return the position after the long bracket ([[...]], [==[...]==])
-- that opens at start, or nil when the text ends inside it.
local function skip_long(text, start)
  local level = text:match("^%[(=*)%[", start)
  local close = text:find("]" .. level .. "]", start + 2 + #level, true)
  return close and close + #level + 2
end

-- Return the position after the quoted string that opens at start, or
-- nil when the text (or the line) ends inside it.
local function skip_quoted(text, start)
  local quote_char = text:sub(start, start)
  local i = start + 1
  while true do
    local k = text:find("[\\" .. quote_char .. "\n]", i)
    if not k or text:sub(k, k) == "\n" then
      return nil
    end
    if text:sub(k, k) == quote_char then
      return k + 1
    end
    i = k + 2
  end
end

-- Scan Lua source text; return true when it ends inside a string or a
-- comment, and the list of brackets still open, each as { char, position }.
local function scan(text)
  local open = {}
  local i = 1
  while i <= #text do
    local c = text:sub(i, i)
    local after
    if text:find("^%-%-%[=*%[", i) then
      after = skip_long(text, i + 2)
    elseif text:find("^%-%-", i) then
      after = text:find("\n", i, true)
      after = after and after + 1
    elseif c == '"' or c == "'" then
      after = skip_quoted(text, i)
    elseif text:find("^%[=*%[", i) then
      after = skip_long(text, i)
    else
      if c == "{" or c == "(" or c == "[" then
        open[#open + 1] = { c, i }
      elseif c == "}" or c == ")" or c == "]" then
        open[#open] = nil
      end
      after = i + 1
    end
    if after == nil then
      return true, open
    end
    i = after
  end
  return false, open
end

-- Return the command name when the text before position `open` (of "{"
-- or "(") calls a borg command, as in borg.create{ or api:list(.
local function command_before(text, open)
  local before = text:sub(1, open - 1)
  local name = before:match("[%.:]%s*([%a_][%w_]*)%s*$")
  if name and catalogue.commands[name] then
    return name
  end
  return nil
end

-- Return the set of key names for the table being written at the end of
-- text when it is an argument of a borg command call, and nil anywhere
-- else. In the first table these are the command's options and the
-- library's own keys; in the second table, the run options.
local function argument_keys(text, open, start)
  local last = open[#open]
  if last == nil or last[1] ~= "{" then
    return nil
  end
  local between = text:sub(last[2] + 1, start)
  if not (between:find("^%s*$") or between:find("[,;]%s*$")) then
    return nil -- after "key =": a value, not a key
  end
  local before = text:sub(1, last[2] - 1)
  local command = command_before(text, last[2])
  local outer = open[#open - 1]
  if command == nil and before:find("%(%s*$") and outer and outer[1] == "(" then
    command = command_before(text, outer[2]) -- name({ ...
  end
  local names = {}
  if command then
    for name in pairs(call.LIBRARY_KEYS) do
      names[name] = true
    end
    for name in pairs(catalogue.commands[command].options) do
      names[name] = true
    end
    return names
  end
  command = outer and outer[1] == "(" and before:find(",%s*$")
    and command_before(text, outer[2])
  if command then
    for _, name in ipairs(call.RUN_KEYS) do
      names[name] = true
    end
    return names
  end
  return nil
end

local borg_module, borg_instance_mt -- found on the first completion

local function instance_metatable()
  if borg_module == nil then
    local ok, borg = pcall(require, "borg")
    if not ok then
      return nil, nil
    end
    borg_module, borg_instance_mt = borg, getmetatable(borg.new())
  end
  return borg_module, borg_instance_mt
end

-- Fields that the borg module and its instances make on first use, so
-- they are not keys of the table until then.
local MADE_ON_USE = { "iter", "parallel", "environ", "set_environ",
                      "unset_environ", "planning", "dry_run" }

-- Return true when value is the borg module or one of its instances.
local function is_borg(value)
  local borg, instance_mt = instance_metatable()
  return borg ~= nil and (rawequal(value, borg) or getmetatable(value) == instance_mt)
end

-- Return field `name` of value, the borg module or an instance, when
-- MADE_ON_USE lists it (reading it makes it); nil otherwise.
local function made_on_use(value, name)
  for _, known in ipairs(MADE_ON_USE) do
    if known == name then
      local ok, field = pcall(function() return value[name] end)
      if ok then
        return field
      end
      return nil
    end
  end
  return nil
end

-- Add the string keys of table t, and those of the tables its metatables
-- name as __index, to the set names.
local function add_fields(names, t, depth)
  for key in next, t do
    if type(key) == "string" then
      names[key] = true
    end
  end
  local ok, mt = pcall(getmetatable, t)
  if ok and type(mt) == "table" and type(rawget(mt, "__index")) == "table"
      and depth < 5 then
    add_fields(names, rawget(mt, "__index"), depth + 1)
  end
end

-- Return the set of field names of value: its keys, and for the borg
-- module and its instances the commands, which they create on first use.
local function field_names(value)
  local names = {}
  if type(value) == "string" then
    add_fields(names, string, 0)
    return names
  end
  if type(value) ~= "table" then
    return names
  end
  add_fields(names, value, 0)
  if is_borg(value) then
    for _, name in ipairs(MADE_ON_USE) do
      if made_on_use(value, name) ~= nil then
        names[name] = true
      end
    end
  end
  local borg, instance_mt = instance_metatable()
  if borg and (rawequal(value, borg) or getmetatable(value) == instance_mt) then
    for _, name in ipairs(borg.commands) do
      names[name] = true
    end
  end
  if borg and getmetatable(value) == instance_mt then
    -- An instance also has those functions of the module (version,
    -- parallel) that its __index provides; it raises for the others.
    for name in next, borg do
      local ok, field = pcall(function() return value[name] end)
      if ok and field ~= nil then
        names[name] = true
      end
    end
  end
  return names
end

-- Return field name of table t, following __index tables (never calling
-- an __index function, and past a __metatable field) up to 5 levels.
local function raw_field(t, name)
  for _ = 1, 5 do
    local field = rawget(t, name)
    if field ~= nil then
      return field
    end
    local mt = debug.getmetatable(t)
    local index = type(mt) == "table" and rawget(mt, "__index")
    if type(index) ~= "table" then
      return nil
    end
    t = index
  end
  return nil
end

-- Return the value at a dotted path such as "borg.format" in the global
-- table, or nil. Only fields already present are read, so completing
-- runs no function of the script and no __index function.
local function resolve(path)
  local value = _G
  for name in path:gmatch("[^%.:]+") do
    if type(value) ~= "table" then
      return nil
    end
    local field = raw_field(value, name)
    if field == nil and is_borg(value) then
      field = made_on_use(value, name)
    end
    value = field
  end
  return value
end

-- Return the sorted names of the set that start with prefix, with suffix
-- appended to each.
local function matching(names, prefix, suffix)
  local list = {}
  for name in pairs(names) do
    if name:sub(1, #prefix) == prefix and is_identifier(name) then
      list[#list + 1] = name .. suffix
    end
  end
  table.sort(list)
  return list
end

-- Return the candidates for the word at the end of text and the word
-- itself (the part the candidates replace).
local function candidates(text)
  local inside, open = scan(text)
  if inside then
    return {}, ""
  end
  local path = text:match("[%a_][%w_%.:]*$") or ""
  local start = #text - #path
  local before = text:sub(start, start)
  if before:find("[%w_%.:%)%]\"']") and start > 0 then
    return {}, ""
  end
  local base, separator, word = path:match("^(.-)([%.:])([%w_]*)$")
  if base then
    if base == "" or base:find("[%.:]$") or base:find(":") then
      return {}, ""
    end
    local names = field_names(resolve(base))
    if separator == ":" then
      local value = resolve(base)
      local borg_object = is_borg(value)
      for name in pairs(names) do
        -- The borg module's own __index makes commands; nothing else runs.
        local ok, field = true, raw_field(value, name)
        if borg_object then
          ok, field = pcall(function() return value[name] end)
        end
        if not ok or type(field) ~= "function" then
          names[name] = nil
        end
      end
    end
    return matching(names, word, ""), word
  end
  word = path
  -- Inside borg.create{ at a key: the option names of that command.
  local keys = argument_keys(text, open, start)
  if keys then
    return matching(keys, word, "="), word
  end
  local names = {}
  add_fields(names, _G, 0)
  for _, keyword in ipairs(KEYWORDS) do
    names[keyword] = true
  end
  local list = {}
  for name in pairs(names) do
    if name:sub(1, #word) == word and name:find("^[%a_][%w_]*$") then
      list[#list + 1] = name
    end
  end
  table.sort(list)
  return list, word
end

-- Return the longest common prefix of the strings in list.
local function common_prefix(list)
  local prefix = list[1] or ""
  for i = 2, #list do
    local s = list[i]
    local n = 0
    while n < #prefix and n < #s and prefix:byte(n + 1) == s:byte(n + 1) do
      n = n + 1
    end
    prefix = prefix:sub(1, n)
  end
  return prefix
end

-- Return the list laid out in columns that fit width characters.
function repl.columns(list, width)
  local widest = 0
  for _, item in ipairs(list) do
    widest = math.max(widest, #item)
  end
  local per_line = math.max(1, (width + 2) // (widest + 2))
  local lines = {}
  for i = 1, #list, per_line do
    local row = {}
    for j = i, math.min(i + per_line - 1, #list) do
      row[#row + 1] = j < i + per_line - 1 and j < #list
        and list[j] .. string.rep(" ", widest + 2 - #list[j]) or list[j]
    end
    lines[#lines + 1] = table.concat(row)
  end
  return table.concat(lines, "\n")
end

-- Complete the word at the end of text (the input before the cursor,
-- including earlier lines of an unfinished chunk). Return the text to
-- insert at the cursor (possibly ""), and when several candidates remain
-- and nothing can be inserted, their listing laid out for width columns.
-- Candidates: global names and keywords; the fields of a table after
-- "." or its methods after ":", including the commands of borg and of
-- instances; and inside borg.create{ (any command, any instance) the
-- option names of that command, with "=" appended.
function repl.complete(text, width)
  local list, word = candidates(text)
  local prefix = common_prefix(list)
  local insert = prefix:sub(#word + 1)
  if insert ~= "" or #list < 2 then
    return insert, nil
  end
  return "", repl.columns(list, width or 80)
end

return repl
