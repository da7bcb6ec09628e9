-- A repository on a full file system: a small tmpfs that a create fills.
-- Mounting needs root (CAP_SYS_ADMIN); without it the spec is skipped
-- with the reason printed.

local borg = require "borg"
local helpers = require "helpers"

local q = helpers.quote

describe("a full file system", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("raises borg's error and leaves the repository intact", function()
    local mnt = dir .. "/mnt"
    os.execute("mkdir " .. q(mnt))
    local output, status = helpers.shell("mount -t tmpfs -o size=8m tmpfs " .. q(mnt)
      .. " 2>&1")
    if status ~= 0 then
      print("\nskipped the disk full spec: cannot mount a tmpfs: " .. output)
      pending("mounting a tmpfs is not permitted: " .. output)
      return
    end
    finally(function()
      os.execute("umount " .. q(mnt))
    end)

    -- The cache stays outside the tmpfs, in dir/base.
    local api = helpers.instance(dir, { log_level = "error",
                                        env = { BORG_PASSPHRASE = "full" } })
    local repo = mnt .. "/repo"
    api.init { repo }
    api.create { repo .. "::first", helpers.source_tree(dir) }
    -- A filler that is deleted later, to free space.
    os.execute("head -c 2000000 /dev/zero > " .. q(mnt .. "/filler"))
    os.execute("mkdir " .. q(dir .. "/big") .. " && head -c 20000000 /dev/urandom > "
      .. q(dir .. "/big/random"))

    local ok, err = pcall(api.create, { repo .. "::big", dir .. "/big" })
    assert.is_false(ok, "the create fitted")
    assert.is_true(borg.is_error(err), tostring(err))
    assert.are.equal("borg", err.kind)
    assert.are.equal(2, err.rc)
    -- borg 1.2 has no error class of its own for ENOSPC.
    assert.are.equal("Exception", err.msgid)
    assert.truthy(err.message:find("No space left on device", 1, true), err.message)

    os.remove(mnt .. "/filler")
    assert.is_nil((api.check { repo }))
    local names = {}
    for _, archive in ipairs(api.list { repo }.archives) do
      names[#names + 1] = archive.name
    end
    assert.are.same({ "first" }, names)
    local out = dir .. "/out"
    os.execute("mkdir " .. q(out))
    api.extract({ repo .. "::first" }, { cwd = out })
    assert.are.equal("alpha\n", helpers.read(out .. dir .. "/src/a.txt"))
  end)
end)
