-- Spot check: extract a few random files of an archive and compare them
-- with the files they were made from.
--
--   local spotcheck = require "borg.spotcheck"
--   local r = spotcheck.run{ "/srv/repo", count = 5 }
--   if not r.ok then
--     for _, m in ipairs(r.mismatches) do print(m.path, m.reason) end
--   end
--
-- The first positional is a repository (its newest archive is checked)
-- or "repo::archive". The files are regular files of the archive, chosen
-- at random, and `seed` makes the choice repeatable. Each is extracted to
-- a temporary directory, and its SHA-256 is compared with the file at
-- `source` .. "/" .. path. source defaults to "/", because borg stores
-- paths relative to it. The temporary directory is removed afterwards.

local errors = require "borg.errors"
local sys = require "borg.sys"

local spotcheck = {}

local KEYS = { "count", "instance", "seed", "source", "tmpdir" }

local function usage(fmt, ...)
  errors.usage("spotcheck", fmt, ...)
end

local function check(spec)
  if type(spec) ~= "table" then
    usage("expected a table { repository or \"repo::archive\", count = N }, got %s",
      errors.describe(spec))
  end
  if type(spec[1]) ~= "string" or spec[1] == "" then
    usage("give the repository or \"repo::archive\" as the first item")
  end
  for key in pairs(spec) do
    if key ~= 1 then
      local known = false
      for _, name in ipairs(KEYS) do
        known = known or name == key
      end
      if not known then
        local guess = errors.nearest(tostring(key), KEYS)
        usage("unknown option '%s'%s", tostring(key),
          guess and string.format(" (did you mean '%s'?)", guess) or "")
      end
    end
  end
  local count = spec.count or 5
  if math.type(count) ~= "integer" or count < 1 then
    usage("count must be a whole number of at least 1, got %s",
      errors.describe(spec.count))
  end
  return count
end

-- Pick up to n items of list at random, without repeats.
local function sample(list, n, random)
  local picked = {}
  for i = 1, #list do
    if i <= n then
      picked[i] = list[i]
    else
      local j = random(1, i)
      if j <= n then
        picked[j] = list[i]
      end
    end
  end
  return picked
end

-- Return a function like math.random(m, n) drawing from its own
-- generator (xorshift64*), so a seed repeats the choice without touching
-- the script's math.random.
local function seeded(seed)
  if math.type(seed) ~= "integer" then
    usage("seed must be an integer, got %s", errors.describe(seed))
  end
  local x = seed ~ 0x9E3779B97F4A7C15
  if x == 0 then
    x = 1
  end
  return function(m, n)
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    local r = (x * 0x2545F4914F6CDD1D) >> 11 -- 53 bits, never negative
    return m + r % (n - m + 1)
  end
end

local function join(root, path)
  return (root:gsub("/+$", "")) .. "/" .. path
end

-- Run the spot check; return { archive, location, checked = { { path,
-- sha256, source_sha256, ok } }, mismatches = { { path, reason } },
-- ok = true when nothing differed }.
function spotcheck.run(spec)
  local count = check(spec)
  local api = spec.instance or require "borg"
  local location = spec[1]
  if require("borg").planning then
    io.stdout:write(string.format("# spotcheck: would extract %d random files of"
      .. " %s and compare them with %s\n", count, location, spec.source or "/"))
    return { location = location, checked = {}, mismatches = {}, ok = true,
             planned = true }
  end
  local repo, archive = location:match("^(.-)::(.+)$")
  if not repo then
    repo = location
    local listing = api.list { repo, json = true, last = 1 }
    local newest = listing.archives and listing.archives[1]
    if newest == nil then
      usage("repository %s has no archive to check", repo)
    end
    archive = newest.name
  end
  location = repo .. "::" .. archive

  local files = {}
  for _, item in ipairs(api.list { location }) do
    if item.type == "-" and type(item.path) == "string" then
      files[#files + 1] = item.path
    end
  end
  local random = math.random
  if spec.seed ~= nil then
    random = seeded(spec.seed)
  end
  local chosen = sample(files, count, random)
  table.sort(chosen)

  local result = { archive = archive, location = location, checked = {},
                   mismatches = {}, ok = true }
  if #chosen == 0 then
    return result
  end
  local dir, message = sys.mkdtemp(spec.tmpdir and (spec.tmpdir .. "/borglua-spot.") or nil)
  if not dir then
    usage("cannot make a temporary directory: %s", message)
  end
  local patterns = { location }
  for _, path in ipairs(chosen) do
    patterns[#patterns + 1] = "pp:" .. path
  end
  local ok, err = pcall(api.extract, patterns, { cwd = dir })
  if not ok then
    sys.remove_tree(dir)
    error(err, 0)
  end
  local source = spec.source or "/"
  for _, path in ipairs(chosen) do
    local got, got_err = sys.sha256_file(join(dir, path))
    local want, want_err = sys.sha256_file(join(source, path))
    local entry = { path = path, sha256 = got, source_sha256 = want,
                    ok = got ~= nil and got == want }
    result.checked[#result.checked + 1] = entry
    if not entry.ok then
      result.ok = false
      local reason = not got and ("not extracted: " .. got_err)
        or not want and ("source unreadable: " .. want_err)
        or "content differs from the source"
      result.mismatches[#result.mismatches + 1] = { path = path, reason = reason }
    end
  end
  sys.remove_tree(dir)
  return result
end

return spotcheck
