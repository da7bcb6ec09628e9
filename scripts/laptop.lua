-- A laptop's nightly backup: the home directory to two repositories, one
-- on a USB disk and one on a server over ssh.
--
--   borglua scripts/laptop.lua            # run it
--   borglua --plan scripts/laptop.lua     # show what it would run
--
-- Each repository gets its own step, so a missing USB disk does not stop
-- the offsite backup (the run still ends with an error that names the
-- failed step). A held repository lock is retried. The USB repository is
-- checked once a week, the offsite one once a month (the state file
-- remembers when), and a random sample of files of the newest offsite
-- archive is compared with the disk.
--
-- Settings come from the environment, so one copy serves every laptop:
--   LAPTOP_HOME      what to back up (default: $HOME)
--   LAPTOP_USB       the USB repository (default: /media/backup/borg)
--   LAPTOP_OFFSITE   the remote one (default: ssh://backup@nas.lan/./laptop)
--   LAPTOP_STATE     directory for the lock, state and status files
--                    (default: $XDG_STATE_HOME/borglua or ~/.local/state/borglua)
-- The passphrase is best given as BORG_PASSCOMMAND (for example
-- "secret-tool lookup borg laptop"), which borg runs when it needs it.

local borg = require "borg"
local policy = require "borg.policy"

local home = os.getenv("LAPTOP_HOME") or os.getenv("HOME")
local state_dir = os.getenv("LAPTOP_STATE") or
  ((os.getenv("XDG_STATE_HOME") or (os.getenv("HOME") .. "/.local/state")) .. "/borglua")
local repositories = {
  { name = "usb", location = os.getenv("LAPTOP_USB") or "/media/backup/borg",
    check_days = 7 },
  { name = "offsite", location = os.getenv("LAPTOP_OFFSITE") or
    "ssh://backup@nas.lan/./laptop", check_days = 30 },
}

-- Options every command gets where it accepts them.
local api = borg.new {
  options = { lock_wait = 30, exclude_caches = true,
              exclude = { home .. "/.cache", "*/node_modules", "*.tmp" } },
  defaults = { create = { compression = "zstd,3", json = true },
               init = { encryption = "repokey-blake2", make_parent_dirs = true } },
}

os.execute("mkdir -p '" .. state_dir:gsub("'", "'\\''") .. "'")

-- Create the repository on the first run.
local function ensure(repo)
  local ok, err = pcall(api.info, { repo })
  if not ok then
    if not (borg.is_error(err) and err.msgid == "Repository.DoesNotExist") then
      error(err, 0)
    end
    api.init { repo }
  end
end

local summary = policy.run({
  name = "laptop",
  lock = state_dir .. "/laptop.lock",
  state = state_dir .. "/laptop.json",
  report = state_dir .. "/laptop.status.json",
}, function(p)
  for _, repo in ipairs(repositories) do
    local where = repo.location
    p:step("backup " .. repo.name, { repository = where, series = "home",
                                     retry = { attempts = 3, delay = 30 },
                                     keep_going = true }, function()
      ensure(where)
      local created = api.create { where .. "::home-{now}", home }
      local stats = created.archive.stats
      print(string.format("%-8s %s: %s files, %s new", repo.name,
        tostring(created.archive.name), tostring(stats.nfiles),
        borg.format.size(stats.deduplicated_size)))
      api.prune { where, glob_archives = "home-*", keep_daily = 7, keep_weekly = 4,
                  keep_monthly = 12 }
      api.compact { where }
    end)
    p:every("check " .. repo.name, repo.check_days, function()
      api.check { where }
    end, { repository = where, keep_going = true })
  end
  p:step("spot check offsite", { keep_going = true }, function()
    local r = policy.spotcheck.run { repositories[2].location, count = 5, instance = api,
                                     source = "/" }
    for _, m in ipairs(r.mismatches) do
      print(string.format("spot check: %s: %s", m.path, m.reason))
    end
    assert(r.ok, "files of the newest offsite archive differ from the disk")
  end)
end)

print(string.format("laptop: %s in %s", summary.status,
  borg.format.duration(summary.duration)))
