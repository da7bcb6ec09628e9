-- Shared set-up for the specs: temporary directories, a borg instance
-- with an environment of its own, files, and shell commands.

local borg = require "borg"

local helpers = {}

-- The borglua program under test (an absolute path, set by `make test`).
helpers.top = os.getenv("BORGLUA_TOP") or os.getenv("PWD") or "."
helpers.borglua = os.getenv("BORGLUA") or (helpers.top .. "/build/borglua")
helpers.fake_borg = helpers.top .. "/tests/bin/fake-borg"

-- Return text quoted for /bin/sh.
function helpers.quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; return its stdout and exit status.
function helpers.shell(command)
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("a")
  local _, _, status = pipe:close()
  return output, status
end

-- Return how many descriptors this process has open. Each one has an
-- entry in /proc/self/fdinfo, a regular file, so probing there needs no
-- child process, which could list them while a spawn still has extra
-- ones open.
function helpers.open_fds()
  -- Earlier specs may leave processes and files that only the garbage
  -- collector closes; collect them first, so that they are not closed
  -- between two counts.
  collectgarbage("collect")
  collectgarbage("collect")
  local count = 0
  for fd = 0, 4095 do
    local info = io.open("/proc/self/fdinfo/" .. fd, "r")
    if info then
      info:close()
      count = count + 1
    end
  end
  return count
end

-- The pid of this process.
-- Return the pids of this process's children, zombies included.
function helpers.children()
  local list = {}
  for pid in helpers.shell("exec pgrep -P " .. helpers.pid):gmatch("%d+") do
    -- A warm borg server ("python3 - /usr/bin/borg") lives as long as the
    -- host by design; it is not a child left behind by a call.
    local cmdline = helpers.read("/proc/" .. pid .. "/cmdline") or ""
    if not cmdline:find("^[^%z]*python[^%z]*%z%-%z") then
      list[#list + 1] = pid
    end
  end
  return list
end

-- Return the state letter of process pid (R, S, Z, ...), or nil when it
-- is gone.
function helpers.process_state(pid)
  local stat = helpers.read("/proc/" .. pid .. "/stat")
  return stat and stat:match("^%d+ %(.-%) (%a)")
end

-- Return true when process pid is gone or a zombie, polling for up to
-- seconds: a process that was signalled may still be exiting. A zombie
-- whose parent died belongs to init, which a container may not reap.
function helpers.ends_within(pid, seconds)
  for _ = 1, math.ceil(seconds * 10) do
    local state = helpers.process_state(pid)
    if state == nil or state == "Z" then
      return true
    end
    os.execute("sleep 0.1")
  end
  return false
end

-- Return a new temporary directory (under $TMPDIR, default /tmp).
function helpers.tmpdir()
  local dir = helpers.shell("mktemp -d -t borglua-spec.XXXXXX"):gsub("%s+$", "")
  assert(dir:find("/borglua%-spec%.%w+$"), "mktemp failed")
  return dir
end

-- Remove a directory made by helpers.tmpdir.
function helpers.rmdir(dir)
  assert(dir:find("/borglua%-spec%.%w+$"))
  os.execute("chmod -R u+rwX " .. helpers.quote(dir) .. " 2>/dev/null; rm -rf "
    .. helpers.quote(dir))
end

function helpers.write(path, content)
  local file = assert(io.open(path, "wb"))
  file:write(content)
  file:close()
end

function helpers.read(path)
  local file = io.open(path, "rb")
  if file == nil then
    return nil
  end
  local content = file:read("a")
  file:close()
  return content
end

-- Return an environment for borg that depends on nothing of the
-- developer's: its own base directory and none of their BORG_ variables.
function helpers.clean_env(dir, extra)
  local vars = {
    BORG_BASE_DIR = dir .. "/base",
    BORG_SELFTEST = "disabled",
  }
  for _, name in ipairs { "BORG_REPO", "BORG_PASSPHRASE", "BORG_PASSCOMMAND",
      "BORG_PASSPHRASE_FD", "BORG_NEW_PASSPHRASE", "BORG_RSH", "BORG_REMOTE_PATH",
      "BORG_KEYS_DIR", "BORG_KEY_FILE", "BORG_CACHE_DIR", "BORG_CONFIG_DIR",
      "BORG_SECURITY_DIR", "BORG_LOGGING_CONF", "BORG_FILES_CACHE_TTL",
      "BORG_HOST_ID", "BORG_EXIT_CODES", "BORG_DISPLAY_PASSPHRASE",
      "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "BORG_RELOCATED_REPO_ACCESS_IS_OK",
      "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING", "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING" } do
    vars[name] = false
  end
  for name, value in pairs(extra or {}) do
    vars[name] = value
  end
  return vars
end

-- Return a borg instance that works in dir; settings are passed to
-- borg.new, with env added to the clean environment.
function helpers.instance(dir, settings)
  settings = settings or {}
  local config = {}
  for key, value in pairs(settings) do
    config[key] = value
  end
  config.env = helpers.clean_env(dir, settings.env)
  return borg.new(config)
end

-- Create a small tree of source files under dir/src; return its path.
function helpers.source_tree(dir)
  local src = dir .. "/src"
  os.execute("mkdir -p " .. helpers.quote(src .. "/sub"))
  helpers.write(src .. "/a.txt", "alpha\n")
  helpers.write(src .. "/b.txt", string.rep("bravo ", 1000))
  helpers.write(src .. "/sub/c.txt", "charlie\n")
  return src
end

-- Return the names of the archives in repo, listed by instance api, sorted.
function helpers.archive_names(api, repo)
  local names = {}
  for _, archive in ipairs(api.list { repo }.archives) do
    names[#names + 1] = archive.name
  end
  table.sort(names)
  return names
end

-- Return the arguments of the last call of the fake borg (recorded in
-- the file argv_path) as a list.
function helpers.recorded_argv(argv_path)
  local data = helpers.read(argv_path)
  if data == nil then
    return nil
  end
  local list = {}
  for arg in data:gmatch("(%Z*)%z") do
    list[#list + 1] = arg
  end
  return list
end

-- Return how many times the fake borg ran.
function helpers.recorded_calls(argv_path)
  local data = helpers.read(argv_path .. ".calls")
  if data == nil then
    return 0
  end
  local _, n = data:gsub("\n", "")
  return n
end

-- Return a borg instance that runs the fake borg, recording into dir.
function helpers.fake_instance(dir, settings)
  settings = settings or {}
  settings.borg = helpers.fake_borg
  settings.env = settings.env or {}
  settings.env.FAKE_BORG_ARGV = dir .. "/argv"
  helpers.pid = helpers.read("/proc/self/stat"):match("^(%d+)")

return helpers.instance(dir, settings), dir .. "/argv"
end

helpers.pid = helpers.read("/proc/self/stat"):match("^(%d+)")

return helpers
