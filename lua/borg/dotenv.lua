-- A reader of `.env` files that gives the values python-dotenv's
-- dotenv_values gives (checked against python-dotenv 0.21).
--
-- Format: one NAME=value per statement, with blank lines, `#` comments
-- and an optional `export ` prefix. A value is unquoted (a ` #` starts a
-- comment), in single quotes (escapes \\ and \'), or in double quotes
-- (escapes \\ \' \" \a \b \f \n \r \t \v). Quoted values may span lines.
-- `${NAME}` and `${NAME:-default}` expand in every value, from the
-- values above in the file and then the base environment. A NAME with
-- no `=` has no value (nil), and so is not set.
--
-- python-dotenv skips a statement it cannot parse with a warning; this
-- reader raises a usage error naming the file and the line instead, so
-- that a half-read file never sets anything.
--
-- NOTE: python's `\s` also matches non-ASCII spaces such as U+00A0; here
-- only ASCII whitespace (and \28-\31, as in Python) counts as space.

local errors = require "borg.errors"

local dotenv = {}

local SPACE = "[ \t\n\r\f\v\28-\31]"        -- python's \s on ASCII
local BLANK = "[ \t\f\v\28-\31]"             -- \s without \r and \n

local DOUBLE_QUOTE_ESCAPES = {
  ["\\"] = "\\", ["'"] = "'", ['"'] = '"', a = "\a", b = "\b", f = "\f",
  n = "\n", r = "\r", t = "\t", v = "\v",
}

-- Return the line number (from 1) of byte position pos in text, counting
-- \r\n, \n and \r each as one line end.
local function line_of(text, pos)
  local line = 1
  local i = 1
  while i < pos do
    local c = text:byte(i)
    if c == 10 then
      line = line + 1
    elseif c == 13 then
      line = line + 1
      if text:byte(i + 1) == 10 and i + 1 < pos then
        i = i + 1
      end
    end
    i = i + 1
  end
  return line
end

-- Return the position after the closing quote of a value that opens at
-- pos, and the text between the quotes, or nil when it is not closed.
-- A backslash before the quote character escapes it, except when no
-- later quote closes the value: then the last such quote closes it, as
-- python-dotenv's regular expression finds by backtracking.
local function read_quoted(text, pos, quote)
  local i = pos + 1
  local last_escaped
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\\" and text:sub(i + 1, i + 1) == quote then
      last_escaped = i + 1
      i = i + 2
    elseif c == quote then
      return i + 1, text:sub(pos + 1, i - 1)
    else
      i = i + 1
    end
  end
  if last_escaped then
    return last_escaped + 1, text:sub(pos + 1, last_escaped - 1)
  end
  return nil
end

local function decode_double(value)
  return (value:gsub("\\([\\'\"abfnrtv])", DOUBLE_QUOTE_ESCAPES))
end

local function decode_single(value)
  return (value:gsub("\\([\\'])", "%1"))
end

-- Return value without a trailing ` #comment` and trailing space.
local function strip_unquoted(value)
  local start = value:find(SPACE .. "+#")
  if start then
    value = value:sub(1, start - 1)
  end
  return (value:gsub(SPACE .. "+$", ""))
end

-- Read the value that starts at pos; return it and the position after it,
-- or nil when a quoted value is not closed.
local function read_value(text, pos)
  local c = text:sub(pos, pos)
  if c == "'" or c == '"' then
    local after, inner = read_quoted(text, pos, c)
    if after == nil then
      return nil
    end
    return c == "'" and decode_single(inner) or decode_double(inner), after
  end
  local stop = text:find("[\r\n]", pos) or #text + 1
  return strip_unquoted(text:sub(pos, stop - 1)), stop
end

-- Return the position after an optional comment and the line end that
-- follow pos, or nil when something else follows.
local function read_line_end(text, pos)
  pos = text:match("^" .. BLANK .. "*()", pos)
  if text:sub(pos, pos) == "#" then
    pos = text:find("[\r\n]", pos) or #text + 1
  end
  if pos > #text then
    return pos
  end
  if text:sub(pos, pos + 1) == "\r\n" then
    return pos + 2
  end
  local c = text:sub(pos, pos)
  if c == "\n" or c == "\r" then
    return pos + 1
  end
  return nil
end

-- Read one statement that starts at pos (after leading space). Return
-- the position after it, the name (nil for a comment) and the value (nil
-- for a name without `=`); or nil and a reason when it cannot be parsed.
local function read_statement(text, pos)
  pos = text:match("^export" .. BLANK .. "+()", pos) or pos
  local name
  local c = text:sub(pos, pos)
  if c == "'" then
    name, pos = text:match("^'([^']+)'()", pos)
    if name == nil then
      return nil, "the quoted name has no closing quote"
    end
  elseif c ~= "#" then
    name, pos = text:match("^([^=#" .. SPACE:sub(2, -2) .. "]+)()", pos)
    if name == nil then
      return nil, "a name is expected before '='"
    end
  end
  pos = text:match("^" .. BLANK .. "*()", pos)
  local value
  if name and text:sub(pos, pos) == "=" then
    pos = text:match("^=" .. BLANK .. "*()", pos)
    local after
    value, after = read_value(text, pos)
    if value == nil then
      return nil, "the quoted value has no closing quote"
    end
    pos = after
  end
  local after = read_line_end(text, pos)
  if after == nil then
    return nil, "unexpected text after the value"
  end
  return after, name, value
end

-- Return the raw statements of text as a list of { name, value, line }.
-- Raises a usage error naming source and the line of a bad statement.
local function read_statements(text, source)
  local list = {}
  local pos = 1
  while true do
    pos = text:match("^" .. SPACE .. "*()", pos)
    if pos > #text then
      return list
    end
    local after, name, value = read_statement(text, pos)
    if after == nil then
      errors.usage("set_environ", "cannot parse %s line %d: %s", source,
        line_of(text, pos), name)
    end
    if name then
      list[#list + 1] = { name = name, value = value, line = line_of(text, pos) }
    end
    pos = after
  end
end

-- Return value with ${NAME} and ${NAME:-default} replaced: from values
-- (names read so far; a name without a value gives "") or else base.
local function expand(value, values, base)
  local out, pos = {}, 1
  while true do
    local start = value:find("${", pos, true)
    if start == nil then
      break
    end
    local name, after = value:match("^([^}:]*)()", start + 2)
    local default
    if value:sub(after, after + 1) == ":-" then
      default, after = value:match("^([^}]*)()", after + 2)
    end
    if value:sub(after, after) == "}" then
      out[#out + 1] = value:sub(pos, start - 1)
      local found = values[name]
      if found == nil then
        found = base[name] or default or ""
      end
      out[#out + 1] = found or ""
      pos = after + 1
    else
      out[#out + 1] = value:sub(pos, start)
      pos = start + 1
    end
  end
  out[#out + 1] = value:sub(pos)
  return table.concat(out)
end

-- Parse the text of a .env file. base ({ NAME = value }) serves the
-- expansions that the file itself does not define; source names the file
-- in error messages. Return a list of { name = ..., value = ... } in the
-- order of first appearance (value nil for a name without `=`), as
-- python-dotenv's dotenv_values orders its dictionary.
function dotenv.parse(text, base, source)
  base = base or {}
  source = source or "the .env text"
  local values, order, index = {}, {}, {}
  for _, statement in ipairs(read_statements(text, source)) do
    local name, value = statement.name, statement.value
    if value ~= nil then
      value = expand(value, values, base)
    end
    if value == nil then
      values[name] = false -- a name without a value expands to ""
    else
      values[name] = value
    end
    if index[name] == nil then
      order[#order + 1] = name
      index[name] = #order
    end
  end
  local result = {}
  for i, name in ipairs(order) do
    result[i] = { name = name, value = values[name] or nil }
  end
  return result
end

-- Read and parse the file at path. Raises a usage error naming the file
-- when it cannot be read or parsed.
function dotenv.load(path, base)
  local file, message = io.open(path, "rb")
  local text
  if file then
    text, message = file:read("a")
    file:close()
  end
  if text == nil then
    local reason = tostring(message):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", "")
    errors.usage("set_environ", "cannot read the .env file %s: %s", path, reason)
  end
  return dotenv.parse(text, base, path)
end

-- Return the path of the nearest `.env` in dir or one of its parents, or
-- nil when there is none.
function dotenv.find(dir)
  dir = dir:gsub("/+$", "")
  while true do
    local path = (dir == "" and "" or dir) .. "/.env"
    local file = io.open(path, "rb")
    if file then
      file:close()
      return path
    end
    if dir == "" then
      return nil
    end
    dir = dir:match("^(.*)/[^/]*$") or ""
  end
end

return dotenv
