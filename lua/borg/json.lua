-- JSON decoding for borg's output.
--
-- borg writes file names that are not valid UTF-8 with Python's
-- "surrogateescape" handler: each undecodable byte 0x80-0xff becomes a
-- lone surrogate escape \udc80-\udcff, which strict decoders such as
-- lua-cjson reject. Such escapes are rewritten to a marker character
-- before decoding and turned back into the original byte afterwards, so
-- names come back as the exact bytes on disk. JSON null becomes an absent
-- field, as usual in Lua.

local cjson = require "cjson.safe"

local json = {}

local decoder = cjson.new()
decoder.decode_max_depth(1000)
local null = decoder.null

-- The marker is U+F0080 + (byte - 0x80), a private-use code point, given
-- to the decoder as the surrogate pair \udb80\udcXX. Its UTF-8 form is
-- F3 B0 82 80 .. F3 B0 83 BF.
-- NOTE: a real U+F0080..U+F00FF character in a name would also be turned
-- into a byte; borg never writes those code points for its own data.
local MARKER_PATTERN = "\243\176([\130\131])([\128-\191])"

local function restore_bytes(s)
  return (s:gsub(MARKER_PATTERN, function(b3, b4)
    return string.char(0x80 + (b3:byte() - 0x82) * 64 + (b4:byte() - 0x80))
  end))
end

-- Rewrite lone low-surrogate escapes; an escape that follows a high
-- surrogate escape is half of a valid pair and stays as it is.
local function mark_surrogates(text)
  return (text:gsub("()(\\+)u[dD][cC]([89a-fA-F]%x)", function(pos, slashes, hex)
    if #slashes % 2 == 0 then
      return nil
    end
    local before = text:sub(math.max(1, pos - 6), pos - 1)
    if before:find("^\\[uU][dD][89abAB]%x%x$") then
      return nil
    end
    return slashes:sub(2) .. "\\udb80\\udc" .. hex
  end))
end

-- lua-cjson 2.1.0 decodes every number as a float; sizes and counts are
-- integers in borg's JSON, so integral values within 2^53 become integers.
local function clean(value, restore)
  for k, v in pairs(value) do
    local kind = type(v)
    if kind == "number" then
      if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
        value[k] = math.tointeger(v)
      end
    elseif kind == "table" then
      clean(v, restore)
    elseif v == null then
      value[k] = nil
    elseif restore and kind == "string" then
      value[k] = restore_bytes(v)
    end
  end
  return value
end

-- Decode text; return the value, or nil and an error message.
function json.decode(text)
  local restore = text:find("\\[uU][dD][cC]") ~= nil
  if restore then
    text = mark_surrogates(text)
  end
  local value, err = decoder.decode(text)
  if err then
    return nil, err
  end
  if value == null then
    return nil, "the document is null"
  end
  local kind = type(value)
  if kind == "string" then
    return restore and restore_bytes(value) or value
  elseif kind == "table" then
    return clean(value, restore)
  end
  return value
end

-- Encode a Lua value as JSON text.
function json.encode(value)
  return decoder.encode(value)
end

return json
