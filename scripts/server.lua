-- A server's nightly backup: a database dump streamed into borg through
-- stdin (never written to disk), the configuration files, a weekly check,
-- and a Prometheus textfile for node_exporter's textfile collector.
--
--   borglua scripts/server.lua
--   borglua --plan scripts/server.lua
--
-- Settings come from the environment:
--   SERVER_REPO      the repository (default: /srv/backup/borg)
--   SERVER_DUMP      the command whose output is the dump, run by /bin/sh
--                    (default: "pg_dumpall")
--   SERVER_PATHS     files to back up, separated by ":" (default: /etc)
--   SERVER_STATE     directory for the lock, state and status files
--                    (default: /var/lib/borglua)
--   SERVER_TEXTFILE  the Prometheus textfile (default:
--                    /var/lib/prometheus/node-exporter/borglua.prom)
-- The repository's passphrase: BORG_PASSPHRASE or BORG_PASSCOMMAND in
-- the service's environment (see scripts/borglua-nightly.service).

local borg = require "borg"
local policy = require "borg.policy"

local repo = os.getenv("SERVER_REPO") or "/srv/backup/borg"
local dump_command = os.getenv("SERVER_DUMP") or "pg_dumpall"
local state_dir = os.getenv("SERVER_STATE") or "/var/lib/borglua"
local textfile = os.getenv("SERVER_TEXTFILE") or
  "/var/lib/prometheus/node-exporter/borglua.prom"
local paths = {}
for path in (os.getenv("SERVER_PATHS") or "/etc"):gmatch("[^:]+") do
  paths[#paths + 1] = path
end

local api = borg.new {
  options = { lock_wait = 120 },
  defaults = { create = { compression = "zstd,6", json = true },
               init = { encryption = "repokey-blake2" } },
}

-- Feed the dump to borg in chunks as borg reads them, so memory use stays
-- flat however large the database is. Returns the run table's stdin
-- function and a function that returns whether the dump command succeeded.
local function dump_source()
  local pipe = assert(io.popen(dump_command, "r"))
  local ok
  return function()
    local chunk = pipe:read(1024 * 1024)
    if chunk == nil and ok == nil then
      ok = pipe:close() == true
    end
    return chunk
  end, function()
    if ok == nil then
      ok = pipe:close() == true
    end
    return ok
  end
end

local summary = policy.run({
  name = "server",
  lock = state_dir .. "/server.lock",
  state = state_dir .. "/server.json",
  report = state_dir .. "/server.status.json",
  textfile = textfile,
}, function(p)
  p:step("init", function()
    local ok, err = pcall(api.info, { repo })
    if not ok and borg.is_error(err) and err.msgid == "Repository.DoesNotExist" then
      api.init { repo }
    elseif not ok then
      error(err, 0)
    end
  end)
  p:step("database", { repository = repo, series = "db", retry = 2 }, function()
    local source, finished
    if borg.planning then
      source, finished = function() return nil end, function() return true end
    else
      source, finished = dump_source()
    end
    local created = api.create({ repo .. "::db-{now}", "-", stdin_name = "dump.sql" },
                               { stdin = source })
    if not finished() then
      error("the dump command failed: " .. dump_command .. "; archive "
        .. created.archive.name .. " is incomplete", 0)
    end
    return created
  end)
  p:step("files", { repository = repo, series = "files", retry = 2 }, function()
    return api.create { repo .. "::files-{now}", table.unpack(paths) }
  end)
  p:step("prune", function()
    for _, series in ipairs { "db-*", "files-*" } do
      api.prune { repo, glob_archives = series, keep_daily = 14, keep_weekly = 8,
                  keep_monthly = 12 }
    end
    api.compact { repo }
  end)
  p:every("check", 7, function() api.check { repo } end, { repository = repo })
end)

print(string.format("server: %s in %s", summary.status,
  borg.format.duration(summary.duration)))
