-- Repository keys: one key per repository however its location is
-- written.

local catalogue = require "borg.catalogue"
local location = require "borg.location"
local helpers = require "helpers"

describe("location.key", function()
  local dir, real

  before_each(function()
    dir = helpers.tmpdir()
    os.execute("mkdir " .. helpers.quote(dir .. "/repo"))
    os.execute("ln -s repo " .. helpers.quote(dir .. "/link"))
    real = helpers.shell("cd " .. helpers.quote(dir) .. " && pwd -P"):gsub("%s+$", "")
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("gives one key for the spellings of a local path", function()
    local expected = real .. "/repo"
    for _, text in ipairs { dir .. "/repo", dir .. "/repo/", dir .. "//repo/.",
        dir .. "/x/../repo", dir .. "/link", "file://" .. dir .. "/repo" } do
      assert.are.equal(expected, location.key(text), text)
    end
    assert.are.equal(expected, location.key("repo", dir))
    assert.are.equal(expected, location.key("./link/", dir))
  end)

  it("keeps the missing part of a repository not created yet", function()
    assert.are.equal(real .. "/new/deeper", location.key(dir .. "/new/./deeper/"))
    assert.are.equal(real .. "/repo/inner", location.key(dir .. "/link/inner"))
  end)

  it("tells different local repositories apart", function()
    assert.are_not.equal(location.key(dir .. "/repo"), location.key(dir .. "/other"))
  end)

  it("gives one key for the spellings of an ssh location", function()
    local cases = {
      { "ssh://me@Host/./repo", "me@host:repo", "ssh://me@host:22/~/repo/" },
      { "ssh://me@host/srv/repo", "me@host:/srv/repo", "ssh://me@host/srv//repo/" },
      { "ssh://host:2222/srv/repo", "ssh://HOST:2222/srv/repo" },
    }
    for _, spellings in ipairs(cases) do
      local first = location.key(spellings[1])
      for i = 2, #spellings do
        assert.are.equal(first, location.key(spellings[i]), spellings[i])
      end
    end
    assert.are_not.equal(location.key("ssh://host:2222/srv/repo"),
      location.key("ssh://host/srv/repo"))
    assert.are_not.equal(location.key("me@host:repo"), location.key("me@host:/repo"))
    assert.are_not.equal(location.key("me@host:repo"), location.key("you@host:repo"))
  end)

  it("keeps other schemes as written without a trailing slash", function()
    assert.are.equal("sftp://host/repo", location.key("sftp://host/repo/"))
  end)
end)

describe("location.of_call", function()
  it("takes the repository from the first positional", function()
    local key = location.of_call(catalogue.commands.create, { "/srv/r::a", "/etc" }, {})
    assert.are.equal(location.key("/srv/r"), key)
  end)

  it("takes BORG_REPO for an empty repository part", function()
    local env = { "HOME=/root", "BORG_REPO=/srv/env-repo" }
    local expected = location.key("/srv/env-repo")
    assert.are.equal(expected, location.of_call(catalogue.commands.create,
      { "::a", "/etc" }, env))
    assert.are.equal(expected, location.of_call(catalogue.commands.list, {}, env))
  end)

  it("returns nil without a repository", function()
    assert.is_nil(location.of_call(catalogue.commands.list, {}, { "HOME=/root" }))
    assert.is_nil(location.of_call(catalogue.commands.umount, { "/mnt" }, {}))
  end)
end)
