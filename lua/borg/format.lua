-- Formatting figures for people: sizes and durations.

local format = {}

local UNITS = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }

-- Return bytes as text with binary units, such as "31.2 MiB" or "512 B".
function format.size(bytes)
  if type(bytes) ~= "number" or bytes ~= bytes or math.abs(bytes) == math.huge then
    return "?"
  end
  local value, unit = math.abs(bytes), 1
  while value >= 1024 and unit < #UNITS do
    value, unit = value / 1024, unit + 1
  end
  local sign = bytes < 0 and "-" or ""
  if unit == 1 then
    return string.format("%s%.0f B", sign, value)
  end
  return string.format("%s%.1f %s", sign, value, UNITS[unit])
end

-- Return a count as text, such as "42", or "?" for anything that is not
-- a number (a placeholder of plan mode).
function format.count(value)
  if math.type(value) == "integer" or (math.type(value) == "float"
      and value == math.floor(value) and math.abs(value) < 2^53) then
    return string.format("%d", value)
  end
  return "?"
end

-- Return seconds as text, such as "4.1 s" or "2 min 5 s".
function format.duration(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or math.abs(seconds) == math.huge then
    return "?"
  end
  if seconds < 60 then
    return string.format("%.1f s", seconds)
  end
  local minutes = seconds // 60.0
  return string.format("%.0f min %.0f s", minutes, (seconds - minutes * 60) // 1)
end

return format
