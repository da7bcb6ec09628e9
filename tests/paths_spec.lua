-- File names that are not valid UTF-8 or that start with "-", through
-- create, list and extract on the real borg 1.2.

local helpers = require "helpers"

local q = helpers.quote

-- "café" in Latin-1: the byte 0xE9 alone is not valid UTF-8.
local LATIN1 = "caf\233"

describe("unusual file names", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir, { log_level = "error" })
    repo = dir .. "/repo"
    src = dir .. "/src"
    os.execute("mkdir -p " .. q(src))
    helpers.write(src .. "/" .. LATIN1, "latin-1 name\n")
    helpers.write(src .. "/-dash", "dash\n")
    helpers.write(src .. "/--double", "double dash\n")
    helpers.write(src .. "/-", "just a dash\n")
    api.init { repo, encryption = "none" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Return the paths of the items of archive, sorted.
  local function paths(archive)
    local list = {}
    for _, item in ipairs(api.list { repo .. "::" .. archive }) do
      list[#list + 1] = item.path
    end
    table.sort(list)
    return list
  end

  it("starting with a dash are paths", function()
    -- Relative names given as positionals: borg must read "-dash" and
    -- "--double" as paths, not as options.
    local files = api.create({ repo .. "::a", "-dash", "--double", list = true },
      { cwd = src })
    local statuses = {}
    for _, record in ipairs(files) do
      statuses[record.path] = record.status
    end
    assert.are.equal("A", statuses["-dash"])
    assert.are.equal("A", statuses["--double"])
    assert.are.same({ "--double", "-dash" }, paths("a"))
  end)

  it("not UTF-8 as a create argument fails in borg 1.2", function()
    -- borg 1.2.4 stores its command line in the archive and cannot
    -- encode the byte 0xE9 there, so it crashes before backing up.
    local ok, err = pcall(api.create, { repo .. "::a", LATIN1 }, { cwd = src })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("Exception", err.msgid)
    assert.truthy(err.message:find("surrogates not allowed", 1, true), err.message)
  end)

  it("come back as the original bytes on extract", function()
    api.create({ repo .. "::a", "." }, { cwd = src })
    -- borg 1.2 writes each byte that is not UTF-8 as "?" in its JSON.
    assert.are.same({ "-", "--double", "-dash", ".", "caf?" }, paths("a"))
    local out = dir .. "/out"
    os.execute("mkdir " .. q(out))
    -- Extract only the Latin-1 file, named by its exact bytes.
    api.extract({ repo .. "::a", LATIN1 }, { cwd = out })
    assert.are.equal("latin-1 name\n", helpers.read(out .. "/" .. LATIN1))
    assert.is_nil(helpers.read(out .. "/-dash"))
    api.extract({ repo .. "::a", "-", "-dash", "--double" }, { cwd = out })
    assert.are.equal("just a dash\n", helpers.read(out .. "/-"))
    assert.are.equal("dash\n", helpers.read(out .. "/-dash"))
    assert.are.equal("double dash\n", helpers.read(out .. "/--double"))
  end)
end)
