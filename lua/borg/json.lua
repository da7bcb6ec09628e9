-- JSON decoding for borg's output.
--
-- borg writes file names that are not valid UTF-8 with Python's
-- "surrogateescape" handler: each undecodable byte 0x80-0xff becomes a
-- lone surrogate escape \udc80-\udcff, which strict decoders such as
-- lua-cjson reject. Before decoding, each such escape is replaced by the
-- raw byte it encodes. lua-cjson copies raw bytes into strings unchanged,
-- so names come back as the exact bytes on disk. JSON null becomes an
-- absent field, as usual in Lua.

local cjson = require "cjson.safe"

local json = {}

local decoder = cjson.new()
decoder.decode_max_depth(1000)
local null = decoder.null

-- Replace each lone low-surrogate escape by its byte. An escape right
-- after a high-surrogate escape is half of a valid pair and stays, and so
-- does an escaped backslash followed by "udc..".
local function restore_bytes(text)
  return (text:gsub("()(\\+)u[dD][cC]([89a-fA-F]%x)", function(pos, slashes, hex)
    if #slashes % 2 == 0 then
      return nil
    end
    local before = text:sub(math.max(1, pos - 6), pos - 1)
    if before:find("^\\[uU][dD][89abAB]%x%x$") then
      return nil
    end
    return slashes:sub(2) .. string.char(tonumber(hex, 16))
  end))
end

-- lua-cjson 2.1.0 decodes every number as a float; sizes and counts are
-- integers in borg's JSON, so integral values within 2^53 become integers.
local function clean(value)
  for k, v in pairs(value) do
    local kind = type(v)
    if kind == "number" then
      if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
        value[k] = math.tointeger(v)
      end
    elseif kind == "table" then
      clean(v)
    elseif v == null then
      value[k] = nil
    end
  end
  return value
end

-- Decode text; return the value, or nil and an error message.
function json.decode(text)
  if text:find("\\[uU][dD][cC]") then
    text = restore_bytes(text)
  end
  local value, err = decoder.decode(text)
  if err then
    return nil, err
  end
  if value == null then
    return nil, "the document is null"
  end
  if type(value) == "table" then
    return clean(value)
  end
  if type(value) == "number" and value == math.floor(value) then
    return math.tointeger(value) or value
  end
  return value
end

-- Encode a Lua value as JSON text. lua-cjson 2.1.0 writes every "/" as
-- backslash-slash; since it escapes each "/" and each backslash, every such
-- pair in its output is such an escape, and "/" is written plainly instead.
function json.encode(value)
  return (decoder.encode(value):gsub("\\/", "/"))
end

return json
