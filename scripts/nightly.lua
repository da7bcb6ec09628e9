-- A nightly backup policy for borglua.
--
--   borglua scripts/nightly.lua REPOSITORY SOURCE...
--
-- Creates the repository when it does not exist yet, backs up the
-- sources into an archive named after the host and the time, prunes this
-- host's old archives (7 daily, 4 weekly, 6 monthly), compacts the repository and
-- checks it. Prints one line per step with its figures.
--
-- The passphrase comes from the environment (BORG_PASSPHRASE or
-- BORG_PASSCOMMAND); NIGHTLY_ENCRYPTION chooses the encryption of a new
-- repository (default "repokey").

local borg = require "borg"
local size, duration, count = borg.format.size, borg.format.duration, borg.format.count

local repository = arg[1]
local sources = table.move(arg, 2, #arg, 1, {})
if repository == nil or #sources == 0 then
  io.stderr:write("usage: borglua scripts/nightly.lua REPOSITORY SOURCE...\n")
  os.exit(2)
end

local function step(name, text)
  print(string.format("%-8s %s", name, text))
end

-- Create the repository on the first run.
local ok, err = pcall(borg.info, { repository })
if not ok then
  if not (borg.is_error(err) and err.msgid == "Repository.DoesNotExist") then
    error(err, 0)
  end
  local encryption = os.getenv("NIGHTLY_ENCRYPTION") or "repokey"
  local _, run = borg.init { repository, encryption = encryption,
                             make_parent_dirs = true }
  step("init", string.format("%s: created (%s) in %s", repository, encryption,
    duration(run.duration)))
end

-- Back up the sources.
local archive = repository .. "::{hostname}-{now:%Y-%m-%dT%H:%M:%S}"
local create_args = { archive, json = true, compression = "lz4", exclude_caches = true }
table.move(sources, 1, #sources, 2, create_args)
local created, run = borg.create(create_args)
local stats = created.archive.stats
step("create", string.format("%s: %s files, %s original, %s deduplicated in %s%s",
  created.archive.name, count(stats.nfiles), size(stats.original_size),
  size(stats.deduplicated_size), duration(run.duration),
  run.status == "warning" and string.format(" (%d warnings)", #run.warnings) or ""))

-- Keep 7 daily, 4 weekly and 6 monthly archives of this host. Other
-- archives in the repository (other machines', hand-made ones) are not
-- this policy's to delete.
local pruned, prune_run = borg.prune { repository, list = true, stats = true,
                                       glob_archives = "{hostname}-*",
                                       keep_daily = 7, keep_weekly = 4,
                                       keep_monthly = 6 }
local kept, removed = 0, 0
for _, entry in ipairs(pruned.list) do
  if entry.action == "keep" then
    kept = kept + 1
  else
    removed = removed + 1
  end
end
step("prune", string.format("kept %d, pruned %d archives in %s", kept, removed,
  duration(prune_run.duration)))

-- Give the space of pruned archives back; borg logs the amount at level info.
local records, compact_run = borg.compact { repository, log_level = "info" }
local freed = "nothing"
for _, record in ipairs(records or {}) do
  freed = record.message:match("freed about (.-) repository space") or freed
end
step("compact", string.format("freed %s in %s", freed, duration(compact_run.duration)))

-- Check the repository and the archives' metadata.
local _, check_run = borg.check { repository }
local listing = borg.list { repository }
step("check", string.format("repository and %d archives OK in %s", #listing.archives,
  duration(check_run.duration)))
