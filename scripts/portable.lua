-- A backup policy that runs unchanged on borg 1.2 and on borg 2.
--
--   borglua scripts/portable.lua PROGRAM REPOSITORY SOURCE...
--
-- PROGRAM is the borg to run ("borg" for 1.2, "borg2" for borg 2).
-- Creates the repository when it does not exist yet and backs up the
-- sources into an archive named after the host and the time. Then it
-- lists the archives, prunes (7 daily, 4 weekly, 6 monthly), compacts and
-- checks, printing one line per step. Every call uses borgapi's command names and borg 1.2's
-- "repo::archive" locations; borglua turns them into borg 2's command line
-- when PROGRAM is borg 2, and the results have the same fields on both.
--
-- The passphrase comes from the environment (BORG_PASSPHRASE or
-- BORG_PASSCOMMAND).

local borg = require "borg"
local size, duration, count = borg.format.size, borg.format.duration, borg.format.count

local program, repository = arg[1], arg[2]
local sources = table.move(arg, 3, #arg, 1, {})
if program == nil or repository == nil or #sources == 0 then
  io.stderr:write("usage: borglua scripts/portable.lua PROGRAM REPOSITORY SOURCE...\n")
  os.exit(2)
end

local api = borg.new { borg = program }

local function step(name, text)
  print(string.format("%-8s %s", name, text))
end

local version = api:version()
step("borg", string.format("major version %d", version.major))

-- Create the repository on the first run.
local ok, err = pcall(api.info, { repository })
if not ok then
  if not (borg.is_error(err) and err.msgid == "Repository.DoesNotExist") then
    error(err, 0)
  end
  local _, run = api.init { repository, encryption = "repokey", make_parent_dirs = true }
  step("init", string.format("created in %s", duration(run.duration)))
end

-- Back up the sources.
local create_args = { repository .. "::{hostname}-{now:%Y-%m-%dT%H:%M:%S}",
                      json = true, compression = "lz4" }
table.move(sources, 1, #sources, 2, create_args)
local created, run = api.create(create_args)
local archive = created.archive
step("create", string.format("%s: %s files, %s original, %s deduplicated in %s",
  archive.name, count(archive.stats.nfiles), size(archive.stats.original_size),
  size(archive.stats.deduplicated_size), duration(run.duration)))

-- The archives, newest last.
local listing = api.list { repository }
local newest = listing.archives[#listing.archives] or {}
step("list", string.format("%d archives, the newest started %s", #listing.archives,
  newest.start or "?"))

-- Keep 7 daily, 4 weekly and 6 monthly archives.
local pruned, prune_run = api.prune { repository, list = true, keep_daily = 7,
                                      keep_weekly = 4, keep_monthly = 6 }
local kept, removed = 0, 0
for _, entry in ipairs(pruned) do
  if entry.action == "keep" then
    kept = kept + 1
  else
    removed = removed + 1
  end
end
step("prune", string.format("kept %d, pruned %d archives in %s", kept, removed,
  duration(prune_run.duration)))

-- Give the space of pruned archives back.
local _, compact_run = api.compact { repository }
step("compact", string.format("done in %s", duration(compact_run.duration)))

-- Check the repository and the archives' metadata.
local _, check_run = api.check { repository }
step("check", string.format("repository and %d archives OK in %s", kept,
  duration(check_run.duration)))
