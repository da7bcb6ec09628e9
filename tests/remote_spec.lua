-- Remote repositories through borg.serve: tests/bin/fake-ssh replaces ssh
-- (BORG_RSH), and FAKE_SSH_FORCED plays the command="..." of an
-- authorized_keys entry, here `borglua -e 'borg.serve{...}'`.

local helpers = require "helpers"

local q = helpers.quote

describe("serve", function()
  local dir, repo, url

  before_each(function()
    dir = helpers.tmpdir()
    repo = dir .. "/repo"
    url = "ssh://backup@server.invalid" .. repo
    helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  -- Return an instance whose remote side runs borg.serve{ <serve_args> }.
  local function client(serve_args)
    local forced = q(helpers.borglua) .. " -e " .. q("borg.serve{ " .. serve_args .. " }")
    return helpers.instance(dir, { env = {
      BORG_RSH = helpers.top .. "/tests/bin/fake-ssh",
      FAKE_SSH_FORCED = forced,
      FAKE_SSH_LOG = dir .. "/ssh.log",
    } })
  end

  it("serves an ssh:// repository end to end", function()
    local api = client("")
    api.init { url, encryption = "none" }
    local stats = api.create({ url .. "::one", "src" }, { cwd = dir })
    assert.is_nil(stats)
    local listing = api.list { url }
    assert.are.equal(1, #listing.archives)
    assert.are.equal("one", listing.archives[1].name)
    assert.are.equal(url, listing.repository.location)
    local items = api.list { url .. "::one" }
    assert.are.equal(5, #items)
    -- Each call went through the ssh stand-in to the forced command.
    local log = helpers.read(dir .. "/ssh.log")
    assert.truthy(log:find("^backup@server.invalid borg serve"), log)
    assert.is_not_nil(helpers.read(repo .. "/config"))
  end)

  it("rejects a repository outside restrict_to_path", function()
    local api = client(string.format("restrict_to_path = %q", dir .. "/allowed"))
    local ok, err = pcall(api.init, { url, encryption = "none" })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.are.equal("PathNotAllowed", err.msgid)
    assert.are.equal("repository path not allowed: " .. repo, err.message)
    assert.is_nil(helpers.read(repo .. "/config"))
  end)

  it("serves a repository inside restrict_to_path", function()
    local api = client(string.format("restrict_to_path = { %q }", repo))
    api.init { url, encryption = "none" }
    assert.are.same({}, api.list { url }.archives)
  end)

  it("keeps deleted archives' data with append_only", function()
    local plain = client("")
    plain.init { url, encryption = "none" }
    plain.create({ url .. "::one", "src" }, { cwd = dir })
    local function data_size()
      return tonumber((helpers.shell("du -sb " .. q(repo .. "/data") .. " | cut -f1")))
    end
    local before = data_size()
    local api = client("append_only = true")
    api.delete { url .. "::one" }
    api.compact { url }
    assert.are.same({}, api.list { url }.archives)
    -- The deletion is only a new transaction: no segment was removed,
    -- and the transaction log that allows a rollback exists.
    assert.is_true(data_size() >= before)
    local transactions = helpers.read(repo .. "/transactions")
    assert.truthy(transactions and transactions:find("transaction %d+"), transactions)
  end)
end)
