-- Retention simulator: which archives would `borg prune` keep, and why.
--
--   local retention = require "borg.retention"
--   local repo = borg.list{ "/srv/repo", json = true }
--   for _, d in ipairs(retention.simulate(repo.archives,
--                        { keep_daily = 7, keep_weekly = 4 })) do
--     print(d.action, d.archive, d.rule, d.rule_number)
--   end
--
-- It follows borg 1.2's own rules (borg/helpers/misc.py and do_prune).
-- Archives are taken newest first. keep_within keeps all archives younger
-- than an interval. Then each of secondly, minutely, hourly, daily,
-- weekly, monthly and yearly keeps the newest archive of each period not
-- kept already, until its count is reached. When there were not enough
-- periods, it also keeps the oldest archive. Periods are read from the
-- local time that borg lists. Checkpoint archives are pruned, except the
-- newest one when no complete archive is newer; list them with
-- `consider_checkpoints = true` to have them simulated.

local errors = require "borg.errors"

local retention = {}

-- The period rules in borg's order, and the part of "YYYY-MM-DDTHH:MM:SS"
-- that names a period (weekly uses the ISO week instead).
local RULES = {
  { name = "secondly", length = 19 },
  { name = "minutely", length = 16 },
  { name = "hourly", length = 13 },
  { name = "daily", length = 10 },
  { name = "weekly" },
  { name = "monthly", length = 7 },
  { name = "yearly", length = 4 },
}

local KEYS = { "keep_within", "keep_last", "keep_secondly", "keep_minutely",
               "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
               "keep_yearly" }

local HOURS = { H = 1, d = 24, w = 24 * 7, m = 24 * 31, y = 24 * 365 }

local function usage(message, ...)
  errors.usage("retention.simulate", message, ...)
end

-- Return the hours of a keep_within interval such as "2d" or "12H".
local function interval_hours(text)
  local number, unit = tostring(text):match("^(%d+)([Hdwmy]?)$")
  unit = unit ~= "" and unit or nil
  local hours = number and unit and HOURS[unit] and tonumber(number) * HOURS[unit]
  if not hours or hours <= 0 then
    usage("keep_within must be a number and a unit H, d, w, m or y (as"
      .. " \"7d\"), got %s", errors.describe(text))
  end
  return hours
end

-- Return the fields of a local time "YYYY-MM-DDTHH:MM:SS[.ffffff]".
local function time_fields(text, name)
  local y, mo, d, h, mi, s = tostring(text):match(
    "^(%d%d%d%d)-(%d%d)-(%d%d)[T ](%d%d):(%d%d):(%d%d)")
  if not y then
    usage("archive '%s' has no usable time (got %s)", tostring(name),
      errors.describe(text))
  end
  return { year = tonumber(y), month = tonumber(mo), day = tonumber(d),
           hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) }
end

-- Return "GGGG-VV", the ISO 8601 year and week of a date, as strftime's
-- "%G-%V" gives it.
local function iso_week(f)
  local noon = os.time { year = f.year, month = f.month, day = f.day, hour = 12 }
  local wday = (tonumber(os.date("%w", noon)) + 6) % 7 + 1 -- Monday is 1
  local thursday = os.date("*t", noon + (4 - wday) * 86400)
  return string.format("%04d-%02d", thursday.year, (thursday.yday - 1) // 7 + 1)
end

local function period(entry, rule)
  if rule.length then
    return entry.stamp:sub(1, rule.length)
  end
  return iso_week(entry.fields)
end

local function check_rules(rules)
  if type(rules) ~= "table" then
    usage("expected a table of keep rules, got %s", errors.describe(rules))
  end
  local any = false
  for key, value in pairs(rules) do
    local known = false
    for _, name in ipairs(KEYS) do
      known = known or name == key
    end
    if not known then
      local guess = type(key) == "string" and errors.nearest(key, KEYS)
      usage("unknown rule '%s'%s", tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
    if key ~= "keep_within" and (math.type(value) ~= "integer" or value < 0) then
      usage("rule '%s' must be a whole number of archives, got %s", key,
        errors.describe(value))
    end
    any = true
  end
  if not any then
    usage("give at least one rule: %s", table.concat(KEYS, ", "))
  end
end

local function is_checkpoint(name)
  return name:find("%.checkpoint$") or name:find("%.checkpoint%.%d+$")
end

-- Return the decisions for archives (the `archives` array of
-- `borg.list{ repo, json = true }`, or any array of { name = , time = })
-- under rules (keep_within, keep_last, keep_secondly ... keep_yearly).
-- options.now (seconds since the epoch) is the time keep_within counts
-- back from. The result is an array, newest archive first, of
-- { action = "keep" | "prune", archive = name, time = , rule = ,
--   rule_number = }, the shape of prune's `list` result.
function retention.simulate(archives, rules, options)
  if type(archives) ~= "table" then
    usage("expected the array of archives from borg.list, got %s",
      errors.describe(archives))
  end
  check_rules(rules)
  options = options or {}
  local entries = {}
  for i, archive in ipairs(archives) do
    if type(archive) ~= "table" or type(archive.name) ~= "string" then
      usage("archive #%d has no name", i)
    end
    local stamp = archive.time or archive.start
    local fields = time_fields(stamp, archive.name)
    entries[#entries + 1] = {
      archive = archive, name = archive.name, index = i, fields = fields,
      stamp = string.format("%04d-%02d-%02dT%02d:%02d:%02d", fields.year,
        fields.month, fields.day, fields.hour, fields.min, fields.sec),
      full = tostring(stamp),
    }
  end
  -- Newest first; equal times keep the order of the listing.
  table.sort(entries, function(a, b)
    if a.full ~= b.full then
      return a.full > b.full
    end
    return a.index < b.index
  end)

  local complete, newest_checkpoint = {}, nil
  for _, entry in ipairs(entries) do
    if is_checkpoint(entry.name) then
      if newest_checkpoint == nil and #complete == 0 then
        newest_checkpoint = entry
      end
    else
      complete[#complete + 1] = entry
    end
  end

  local kept = {}
  if rules.keep_within then
    local limit = (options.now or os.time()) - interval_hours(rules.keep_within) * 3600
    local count = 0
    for _, entry in ipairs(complete) do
      if os.time(entry.fields) > limit then
        count = count + 1
        kept[entry] = { "within", count }
      end
    end
  end
  for _, rule in ipairs(RULES) do
    local n = rules["keep_" .. rule.name]
    if rule.name == "secondly" then
      n = n or rules.keep_last
    end
    if n and n > 0 then
      local count, last, entry = 0, nil, nil
      for _, e in ipairs(complete) do
        entry = e
        local p = period(e, rule)
        if p ~= last then
          last = p
          if not kept[e] then
            count = count + 1
            kept[e] = { rule.name, count }
            if count == n then
              break
            end
          end
        end
      end
      if entry and count < n and not kept[entry] then
        kept[entry] = { rule.name .. "[oldest]", count + 1 }
      end
    end
  end

  local decisions = {}
  for _, entry in ipairs(entries) do
    local why = kept[entry]
    local decision = { archive = entry.name, time = entry.archive.time or
                       entry.archive.start, action = why and "keep" or "prune" }
    if why then
      decision.rule, decision.rule_number = why[1], why[2]
    elseif entry == newest_checkpoint then
      decision.action, decision.rule = "keep", "checkpoint"
    end
    decisions[#decisions + 1] = decision
  end
  return decisions
end

return retention
