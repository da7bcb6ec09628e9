-- One result schema for borg 1.2 and borg 2.
--
-- borg 1.2 and borg 2 describe the same things with different JSON: 1.2
-- writes times as naive local time, borg 2 with a UTC offset; 1.2 gives a
-- command line as an array, borg 2 as one shell-quoted string; 1.2 calls
-- a link target `source`/`linktarget`, borg 2 `target`; each version has
-- statistics the other lacks. The functions here build new tables with
-- the fields both versions share, in one form, and leave borg's decoded
-- document untouched (a call keeps it in run.raw). The README's schema
-- table lists the fields.

local schema = {}

-- Fields that hold a time in list items and archive entries.
local TIME_FIELDS = { "mtime", "ctime", "atime", "birthtime", "start", "end",
                      "time", "last_modified" }

-- Return a copy of the fields named in names that value has.
local function pick(value, names)
  local copy = {}
  for _, name in ipairs(names) do
    copy[name] = value[name]
  end
  return copy
end

-- Return the host's UTC offset ("+01:00") at a local time.
local function local_offset(year, month, day, hour, min, sec)
  local epoch = os.time { year = year, month = month, day = day,
                          hour = hour, min = min, sec = sec }
  local offset = os.date("%z", epoch)
  return offset:sub(1, 3) .. ":" .. offset:sub(4, 5)
end

-- The host's UTC offset by date ("2026-12-04"), for days without a
-- change of offset, or false for a day with one. Each offset costs two
-- C library calls that read the time zone, and a listing has one time
-- per item. Emptied when it grows past DAYS_KEPT dates.
local day_offsets, days_cached = {}, 0
local DAYS_KEPT = 4096

-- Return the host's UTC offset at a naive local time, using the cache of
-- whole days.
local function offset_at(date, year, month, day, hour, min, sec)
  local cached = day_offsets[date]
  if cached then
    return cached
  end
  if cached == nil then
    local first = local_offset(year, month, day, 0, 0, 0)
    local last = local_offset(year, month, day, 23, 59, 59)
    if days_cached >= DAYS_KEPT then
      day_offsets, days_cached = {}, 0
    end
    days_cached = days_cached + 1
    day_offsets[date] = first == last and first
    if first == last then
      return first
    end
  end
  return local_offset(year, month, day, hour, min, sec)
end

-- Return text, a time as borg writes it, as an ISO 8601 time with a UTC
-- offset ("2026-12-04T14:51:08.000000+01:00"). A naive time (borg 1.2)
-- is local time of this host, so it gets the host's offset at that time.
-- NOTE: this assumes that borg ran with the host's time zone; a call
-- whose env sets another TZ gets the host's offset.
function schema.time(text)
  if type(text) ~= "string" then
    return text
  end
  if text:find("Z$") then
    return text:sub(1, -2) .. "+00:00"
  end
  if text:find("[+-]%d%d:?%d%d$") then
    local head, sign, hours, minutes = text:match("^(.-)([+-])(%d%d):?(%d%d)$")
    return head .. sign .. hours .. ":" .. minutes
  end
  local date, year, month, day, hour, min, sec = text:match(
    "^((%d%d%d%d)%-(%d%d)%-(%d%d))[T ](%d%d):(%d%d):(%d%d)")
  if year == nil then
    return text
  end
  return text .. offset_at(date, tonumber(year), tonumber(month), tonumber(day),
    tonumber(hour), tonumber(min), tonumber(sec))
end

local BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local BASE64_VALUE = {}
for i = 1, #BASE64 do
  BASE64_VALUE[BASE64:byte(i)] = i - 1
end

-- Return the bytes that base64 text encodes, or nil when it is not base64.
function schema.base64_decode(text)
  text = text:gsub("=+$", "")
  local out, bits, count = {}, 0, 0
  for i = 1, #text do
    local value = BASE64_VALUE[text:byte(i)]
    if value == nil then
      return nil
    end
    bits = (bits << 6) | value
    count = count + 6
    if count >= 8 then
      count = count - 8
      out[#out + 1] = string.char((bits >> count) & 0xff)
    end
  end
  return table.concat(out)
end

-- Return the words of a command line that borg 2 wrote as one string with
-- POSIX shell quoting (Python's shlex.join).
function schema.split_command_line(text)
  local words, word, quote, escaped, started = {}, {}, nil, false, false
  for i = 1, #text do
    local char = text:sub(i, i)
    if escaped then
      word[#word + 1], escaped = char, false
    elseif quote == "'" then
      if char == "'" then quote = nil else word[#word + 1] = char end
    elseif quote == '"' then
      if char == '"' then
        quote = nil
      elseif char == "\\" and text:sub(i + 1, i + 1):find('^[\\"$`]') then
        escaped = true
      else
        word[#word + 1] = char
      end
    elseif char == "'" or char == '"' then
      quote, started = char, true
    elseif char == "\\" then
      escaped, started = true, true
    elseif char:find("%s") then
      if started then
        words[#words + 1], word, started = table.concat(word), {}, false
      end
    else
      word[#word + 1], started = char, true
    end
  end
  if started then
    words[#words + 1] = table.concat(word)
  end
  return words
end

-- Return a command line as an array of words.
local function command_line(value)
  if type(value) == "string" then
    return schema.split_command_line(value)
  end
  if type(value) == "table" then
    return table.move(value, 1, #value, 1, {})
  end
  return value
end

-- Convert the time fields of a copied record in place.
local function convert_times(record)
  for _, name in ipairs(TIME_FIELDS) do
    if record[name] ~= nil then
      record[name] = schema.time(record[name])
    end
  end
  return record
end

-- Fields of a list item that only one version has.
local ITEM_VERSION_FIELDS = { source = true, linktarget = true, hlid = true,
                              path_b64 = true }

-- Return the normalized copy of one item of an archive's file list: the
-- path as the exact bytes of the name (from path_b64 where borg 2 gives
-- it), `target` for a link's target, times with a UTC offset. Fields that
-- a `format` asked for are kept.
function schema.item(record)
  local copy = {}
  for key, value in pairs(record) do
    copy[key] = value
  end
  return schema.item_in_place(copy)
end

-- Normalize a decoded list item as schema.item does, in place, and return
-- it: for records that nothing else keeps, such as those of borg.iter.list.
function schema.item_in_place(record)
  if record.path_b64 then
    record.path = schema.base64_decode(record.path_b64) or record.path
  end
  if record.path ~= nil or record.type ~= nil then
    record.target = record.target or record.linktarget or record.source or ""
  end
  for key in pairs(ITEM_VERSION_FIELDS) do
    record[key] = nil
  end
  return convert_times(record)
end

local function repository(value)
  return value and convert_times(pick(value, { "id", "location", "last_modified" }))
end

local function encryption(value)
  return value and pick(value, { "mode", "keyfile" })
end

local function cache(value)
  if value == nil then
    return nil
  end
  return {
    path = value.path,
    stats = value.stats and pick(value.stats, { "total_chunks", "total_size",
                                                "total_unique_chunks", "unique_size" }),
  }
end

-- Fields of an archive in create's and info's documents.
local ARCHIVE_FIELDS = { "name", "id", "start", "end", "duration", "comment",
                         "hostname", "username", "chunker_params" }

-- Return the normalized copy of an archive of create's or info's document.
function schema.archive(value)
  local archive = convert_times(pick(value, ARCHIVE_FIELDS))
  archive.command_line = command_line(value.command_line)
  if value.chunker_params then
    archive.chunker_params = table.move(value.chunker_params, 1,
      #value.chunker_params, 1, {})
  end
  if value.stats then
    archive.stats = pick(value.stats, { "original_size", "deduplicated_size", "nfiles" })
  end
  return archive
end

-- Return the normalized copy of an entry of a repository's archive list;
-- fields that a `format` asked for are kept, 1.2's `barchive` is not.
function schema.listed_archive(value)
  local entry = {}
  for key, field in pairs(value) do
    if key ~= "barchive" then
      entry[key] = field
    end
  end
  return convert_times(entry)
end

-- Return the normalized copy of a JSON document of create, info or list
-- (of a repository).
function schema.document(doc)
  if type(doc) ~= "table" then
    return doc
  end
  local result = {
    repository = repository(doc.repository),
    encryption = encryption(doc.encryption),
    cache = cache(doc.cache),
    security_dir = doc.security_dir,
  }
  if doc.archive then
    result.archive = schema.archive(doc.archive)
  end
  if doc.archives then
    local is_list = doc.cache == nil
    result.archives = {}
    for i, archive in ipairs(doc.archives) do
      result.archives[i] = is_list and schema.listed_archive(archive)
        or schema.archive(archive)
    end
  end
  return result
end

-- Return the normalized copy of a prune list entry: its time ("Fri,
-- 2026-12-04 18:17:32", with " +0000" from borg 2) in ISO form.
function schema.prune_entry(entry)
  local copy = {}
  for key, value in pairs(entry) do
    copy[key] = value
  end
  if type(entry.time) == "string" then
    local date, clock, offset = entry.time:match(
      "^%a%a%a, (%d%d%d%d%-%d%d%-%d%d) (%d%d:%d%d:%d%d)%s*([+-]?%d*)$")
    if date then
      copy.time = schema.time(date .. "T" .. clock .. offset)
    end
  end
  return copy
end

-- Return the result of command with its borg documents normalized; plan
-- is the call's plan (its outputs name the values of a result table).
function schema.result(command, plan, result)
  if result == nil then
    return nil
  end
  local function one(name, value)
    if command == "list" and name == "list" and plan.lines then
      local items = {}
      for i, record in ipairs(value) do
        items[i] = schema.item(record)
      end
      return items
    elseif (command == "list" and name == "list") or command == "info"
        or ((command == "create" or command == "import_tar") and name == "stats") then
      return schema.document(value)
    elseif command == "prune" and name == "list" then
      local entries = {}
      for i, entry in ipairs(value) do
        entries[i] = schema.prune_entry(entry)
      end
      return entries
    end
    return value
  end
  local outputs = plan.outputs or {}
  if #outputs == 1 then
    return one(outputs[1], result)
  end
  if #outputs > 1 and type(result) == "table" then
    local copy = {}
    for _, name in ipairs(outputs) do
      copy[name] = one(name, result[name])
    end
    return copy
  end
  return result
end

return schema
