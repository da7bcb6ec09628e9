-- mount and umount through FUSE, against the real borg: the handle, the
-- content of the mounted archive, and that nothing stays mounted.

local helpers = require "helpers"

local q = helpers.quote

-- Return true when path appears as a mount point in /proc/self/mounts.
local function mounted(path)
  local mounts = helpers.read("/proc/self/mounts") or ""
  for line in mounts:gmatch("[^\n]+") do
    local point = line:match("^%S+ (%S+)")
    if point == path then
      return true
    end
  end
  return false
end

-- Return the number of `borg mount` processes whose argv names path.
local function mount_processes(path)
  local output = helpers.shell("ps -eo args | grep -F " .. q("mount") .. " | grep -F "
    .. q(path) .. " | grep -v grep | wc -l")
  return tonumber(output)
end

describe("mount", function()
  local dir, api, repo, mnt

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    mnt = dir .. "/mnt"
    helpers.source_tree(dir)
    os.execute("mkdir " .. q(mnt))
    api.init { repo, encryption = "none" }
    api.create({ repo .. "::one", "src" }, { cwd = dir })
  end)

  after_each(function()
    -- Whatever a spec left behind, unmount it before the directory goes.
    if mounted(mnt) then
      os.execute("fusermount -u -z " .. q(mnt))
    end
    assert.is_false(mounted(mnt))
    helpers.rmdir(dir)
  end)

  it("returns a handle once the archive's files are readable", function()
    local handle = api.mount { repo .. "::one", mnt }
    local ok, err = pcall(function()
      assert.is_true(mounted(mnt))
      assert.are.equal("alpha\n", helpers.read(mnt .. "/src/a.txt"))
      assert.are.equal(string.rep("bravo ", 1000), helpers.read(mnt .. "/src/b.txt"))
      assert.are.equal(mnt, handle.mountpoint)
      assert.are.equal("integer", math.type(handle.pid))
    end)
    handle:umount()
    assert.is_true(ok, tostring(err))
    assert.is_false(mounted(mnt))
    assert.are.equal(0, mount_processes(mnt))
    assert.are.equal(0, handle.rc)
  end)

  it("mounts a whole repository with one directory per archive", function()
    local handle = api.mount { repo, mnt }
    local content = helpers.read(mnt .. "/one/src/sub/c.txt")
    api.umount { mnt }
    assert.are.equal("charlie\n", content)
    assert.is_false(mounted(mnt))
    assert.are.equal(0, mount_processes(mnt))
    -- borg.umount reaped the child of the handle, so this does nothing.
    assert.is_nil(handle:umount())
  end)

  it("finds a relative mount point in the run table's cwd", function()
    local handle = api.mount({ "repo::one", "mnt" }, { cwd = dir })
    local content = helpers.read(mnt .. "/src/a.txt")
    assert.are.equal(mnt, handle.mountpoint)
    api.umount({ "mnt" }, { cwd = dir })
    assert.are.equal("alpha\n", content)
    assert.is_false(mounted(mnt))
    assert.is_true(handle.reaped)
    assert.are.equal(0, mount_processes(mnt))
  end)

  it("unmounts when a <close> handle goes out of scope", function()
    do
      local handle <close> = api.mount { repo .. "::one", mnt }
      assert.is_true(mounted(mnt))
      assert.is_not_nil(handle)
    end
    assert.is_false(mounted(mnt))
    assert.are.equal(0, mount_processes(mnt))
  end)

  it("leaves nothing mounted when a script ends without umount", function()
    helpers.write(dir .. "/forget.lua", string.format([[
      local api = borg.new{ env = { BORG_BASE_DIR = %q, BORG_SELFTEST = "disabled",
                                    BORG_REPO = false, BORG_PASSPHRASE = false } }
      mounted = api.mount{ %q, %q }
      io.write(io.open(%q):read("a"))
    ]], dir .. "/base", repo .. "::one", mnt, mnt .. "/src/a.txt"))
    local output, status = helpers.shell(q(helpers.borglua) .. " " .. q(dir .. "/forget.lua"))
    assert.are.equal(0, status)
    assert.are.equal("alpha\n", output)
    assert.is_false(mounted(mnt))
    -- borg ends once its file system is gone; give it a moment.
    for _ = 1, 50 do
      if mount_processes(mnt) == 0 then
        break
      end
      os.execute("sleep 0.1")
    end
    assert.are.equal(0, mount_processes(mnt))
  end)

  it("keeps the mount when a file in it is open", function()
    local handle = api.mount { repo .. "::one", mnt }
    local file = assert(io.open(mnt .. "/src/a.txt", "r"))
    local ok, err = pcall(handle.umount, handle)
    file:close()
    local still_mounted = mounted(mnt)
    handle:umount()
    assert.is_false(ok)
    assert.are.equal("umount", err.command)
    assert.truthy(err.message:find("still mounted", 1, true), err.message)
    assert.is_true(still_mounted)
    assert.is_false(mounted(mnt))
  end)

  it("raises borg's error when the archive does not exist", function()
    local ok, err = pcall(api.mount, { repo .. "::missing", mnt })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("mount", err.command)
    assert.are.equal("Archive.DoesNotExist", err.msgid)
    assert.is_false(mounted(mnt))
    assert.are.equal(0, mount_processes(mnt))
  end)

  it("rejects a mount point that is mounted already", function()
    local handle = api.mount { repo .. "::one", mnt }
    local ok, err = pcall(api.mount, { repo .. "::one", mnt })
    handle:umount()
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal(mnt .. " is a mount point already; unmount it first", err.message)
  end)
end)
