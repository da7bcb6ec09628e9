-- mount and umount: borg runs `mount --foreground` as a child that the
-- call manages. borg.mount returns a handle once the mount point is live;
-- handle:umount() (or borg.umount on the same mount point) unmounts it
-- and reaps the child.
--
--   local m <close> = borg.mount{ "/srv/repo::a", "/mnt/a" }
--   print(io.open("/mnt/a/etc/hostname"):read("a"))
--   m:umount()   -- also done when m goes out of scope

local core = require "borg.core"
local errors = require "borg.errors"
local process = require "borg.process"

local mount = {}

-- Seconds to wait for the mount point to become live, and for borg to
-- end after the file system was unmounted.
local LIVE_WAIT = 120
local EXIT_WAIT = 30
local POLL = 0.05

-- Handles of the mounts that are still live, by mount point as given.
local live = {}

-- Return true when path is the root of a file system other than its
-- parent's.
local function is_mount_point(path)
  local dev = core.device(path)
  local parent = core.device(path .. "/..")
  return dev ~= nil and parent ~= nil and dev ~= parent
end

-- Return the absolute path of a mount point that borg, running in cwd,
-- receives as path; the host's own directory may differ from cwd.
local function resolve(path, cwd)
  if path:sub(1, 1) ~= "/" and cwd then
    path = cwd .. "/" .. path
  end
  return core.realpath(path) or path
end

local Handle = {}
Handle.__index = Handle

-- Wait up to seconds for the mount child to end; return true when it did.
local function wait_exit(handle, seconds)
  local deadline = core.now() + seconds
  while not process.poll(handle.process) do
    if core.now() > deadline then
      return false
    end
    core.sleep(POLL)
  end
  return true
end

-- Reap the mount child: wait for it to end after the unmount, stop it
-- when it does not, and raise its error when it failed.
local function reap(handle)
  if handle.reaped then
    return
  end
  handle.reaped = true
  live[handle.mountpoint] = nil
  if not wait_exit(handle, EXIT_WAIT) then
    handle.proc:kill()
  end
  local outcome = process.finish(handle.process)
  handle.rc = outcome.rc
  require("borg.call").judge(outcome, handle.ctx)
end

-- Unmount the file system and reap borg. A second call does nothing.
function Handle:umount(run)
  if not self.reaped then
    self.inst.umount({ self.mountpoint }, run)
  end
  return nil
end

-- `local m <close> = borg.mount{...}` unmounts when m goes out of scope.
Handle.__close = function(self)
  if not self.reaped then
    self:umount()
  end
end

-- A handle collected while still mounted (a script that ends without
-- umount) detaches the mount lazily: borg 1.2 ends on the host's SIGTERM
-- without unmounting, which would leave a dead mount behind.
Handle.__gc = function(self)
  if not self.reaped then
    os.execute("fusermount -u -z '" .. self.mountpoint:gsub("'", "'\\''")
      .. "' 2>/dev/null")
  end
end

Handle.__tostring = function(self)
  return string.format("borg mount %s (pid %s%s)", tostring(self.mountpoint), tostring(self.pid),
    self.reaped and ", unmounted" or "")
end

mount.mount = {
  plan = function(args, ctx)
    if type(args[2]) ~= "string" then
      errors.usage("mount", "the mount point is missing: give it after the"
        .. " repository or archive, as in borg.mount{ \"repo::a\", \"/mnt/a\" }")
    end
    ctx.mountpoint = resolve(args[2], ctx.run.cwd)
    if is_mount_point(ctx.mountpoint) then
      errors.usage("mount", "%s is a mount point already; unmount it first",
        args[2])
    end
    if ctx.run.timeout then
      errors.usage("mount", "run option 'timeout' would stop the mount while it"
        .. " is in use; unmount with handle:umount() instead")
    end
    args.foreground = true
    return { outputs = {}, stdout = "null" }
  end,
  -- Start borg, wait until the mount point is live, return the handle.
  start = function(ctx, job)
    local mountpoint = ctx.mountpoint
    local print_log = job.print_log
    if print_log then
      -- borg 1.2 with pyfuse3 warns about trio on every unmount; the
      -- warning is harmless and stays in run.log.
      job.print_log = function(record)
        if not tostring(record.message):find("Trio guest run got abandoned", 1, true) then
          print_log(record)
        end
      end
    end
    local running = process.start(job)
    local proc, state = running.proc, running.state
    local handle = setmetatable({
      mountpoint = mountpoint, pid = state.pid, argv = ctx.argv,
      inst = ctx.inst, ctx = ctx, job = job, proc = proc, state = state,
      process = running,
    }, Handle)
    local deadline = core.now() + LIVE_WAIT
    while not is_mount_point(mountpoint) do
      if process.poll(running) then
        -- borg ended before the file system was live: report why.
        handle.reaped = true
        local outcome = process.finish(running)
        require("borg.call").judge(outcome, ctx)
        error(errors.new {
          kind = "borg", command = "mount", rc = outcome.rc, argv = ctx.argv,
          message = "borg ended without mounting " .. mountpoint,
        }, 0)
      end
      local interrupted = core.interrupted()
      if core.now() > deadline or interrupted then
        handle.reaped = true
        proc:kill()
        local outcome = process.finish(running)
        if interrupted then
          -- Raises the "signal" error of an interrupted call.
          require("borg.call").judge(outcome, ctx)
        end
        error(errors.new {
          kind = "timeout", command = "mount", argv = ctx.argv,
          message = string.format("%s was not mounted after %d s; borg was stopped",
            mountpoint, LIVE_WAIT),
        }, 0)
      end
      -- NOTE: inside borg.parallel this sleep does not yield, so the
      -- other functions wait until the mount point is live.
      core.sleep(POLL)
    end
    live[mountpoint] = handle
    return handle, { argv = ctx.argv, command = "mount", pid = state.pid }
  end,
}

-- borg.umount{ mountpoint }: unmount, and reap the child of a mount that
-- this host started there.
mount.umount = {
  plan = function()
    return { outputs = {}, stdout = "null" }
  end,
  result = function(_, state, ctx)
    local mountpoint = resolve(ctx.merged[1], ctx.run.cwd)
    -- borg umount exits with 1 when fusermount fails, as when a file in
    -- the mount is still open: the file system stays mounted.
    if is_mount_point(mountpoint) then
      local stderr = state.stderr[#state.stderr]
      error(errors.new {
        kind = "borg", command = "umount", rc = state.rc, argv = ctx.argv,
        stderr = table.concat(state.stderr, "\n"),
        message = string.format("%s is still mounted%s", mountpoint,
          stderr and ": " .. stderr or " (is a file in it still open?)"),
      }, 0)
    end
    local handle = live[mountpoint]
    if handle then
      reap(handle)
    end
    return nil
  end,
}

return mount
