-- The shared result schema's conversions, on values as borg 1.2 and
-- borg 2 write them.

local schema = require "borg.schema"

describe("schema.time", function()
  it("keeps a time with an offset", function()
    assert.are.equal("2026-12-04T19:16:10.520268+01:00",
      schema.time("2026-12-04T19:16:10.520268+01:00"))
  end)

  it("writes Z and +0000 as +00:00", function()
    assert.are.equal("2026-12-04T18:16:10+00:00", schema.time("2026-12-04T18:16:10Z"))
    assert.are.equal("2026-12-04T18:16:10+00:00", schema.time("2026-12-04T18:16:10+0000"))
  end)

  it("gives a naive time the host's offset", function()
    local text = "2026-07-01T12:00:00.000000"
    local epoch = os.time { year = 2026, month = 7, day = 1, hour = 12, min = 0, sec = 0 }
    local offset = os.date("%z", epoch)
    assert.are.equal(text .. offset:sub(1, 3) .. ":" .. offset:sub(4, 5), schema.time(text))
  end)

  it("gives each hour of a day with a clock change its offset", function()
    if not io.open("/usr/share/zoneinfo/Europe/Berlin") then
      pending("needs the time zone Europe/Berlin (Debian package tzdata)")
      return
    end
    -- A host in Berlin: the offsets are cached by day, so each time is
    -- converted twice, and the second result comes from the cache.
    local helpers = require "helpers"
    local output = helpers.shell("TZ=Europe/Berlin " .. helpers.quote(helpers.borglua)
      .. " -e " .. helpers.quote([[
        local schema = require "borg.schema"
        for _, text in ipairs { "2026-03-29T01:30:00", "2026-03-29T03:30:00.5",
                                "2026-03-28T12:00:00", "2026-07-01T12:00:00",
                                "2026-10-25 01:00:00", "2026-10-25T12:00:00" } do
          print(schema.time(text), schema.time(text))
        end]]))
    assert.are.equal(table.concat({
      "2026-03-29T01:30:00+01:00\t2026-03-29T01:30:00+01:00",
      "2026-03-29T03:30:00.5+02:00\t2026-03-29T03:30:00.5+02:00",
      "2026-03-28T12:00:00+01:00\t2026-03-28T12:00:00+01:00",
      "2026-07-01T12:00:00+02:00\t2026-07-01T12:00:00+02:00",
      "2026-10-25 01:00:00+02:00\t2026-10-25 01:00:00+02:00",
      "2026-10-25T12:00:00+01:00\t2026-10-25T12:00:00+01:00", "" }, "\n"), output)
  end)

  it("leaves other values alone", function()
    assert.are.equal("yesterday", schema.time("yesterday"))
    assert.is_nil(schema.time(nil))
  end)
end)

describe("schema.base64_decode", function()
  it("decodes borg 2's path_b64", function()
    assert.are.equal("src/caf\233", schema.base64_decode("c3JjL2NhZuk="))
    assert.are.equal("", schema.base64_decode(""))
  end)

  it("returns nil for text that is not base64", function()
    assert.is_nil(schema.base64_decode("c3Jj!"))
  end)
end)

describe("schema.split_command_line", function()
  it("splits shell-quoted words as Python's shlex.join writes them", function()
    assert.are.same({ "/usr/bin/borg2", "create", "a b", "it's", "", "x" },
      schema.split_command_line("/usr/bin/borg2 create 'a b' 'it'\"'\"'s' '' x"))
  end)

  it("handles double quotes and backslashes", function()
    assert.are.same({ "a\"b", "c d", "e\\f" },
      schema.split_command_line([["a\"b" c\ d 'e\f']]))
  end)
end)

describe("schema.item", function()
  it("takes the path from path_b64 and the target from 1.2's source", function()
    local item = schema.item { path = "src/caf?", path_b64 = "c3JjL2NhZuk=", type = "-",
                               hlid = "", mtime = "2026-12-04T18:16:09+00:00" }
    assert.are.equal("src/caf\233", item.path)
    assert.are.equal("", item.target)
    assert.is_nil(item.path_b64)
    assert.is_nil(item.hlid)
    local link = schema.item { path = "src/link", type = "l", source = "a.txt",
                               linktarget = "a.txt" }
    assert.are.equal("a.txt", link.target)
    assert.is_nil(link.source)
    assert.is_nil(link.linktarget)
  end)
end)

describe("schema.prune_entry", function()
  it("writes both versions' times in ISO form", function()
    local two = schema.prune_entry { action = "keep", time = "Fri, 2026-12-04 18:17:32 +0000" }
    assert.are.equal("2026-12-04T18:17:32+00:00", two.time)
    assert.are.equal("keep", two.action)
    local one = schema.prune_entry { action = "prune", time = "Fri, 2026-12-04 18:17:32" }
    assert.truthy(one.time:find("^2026%-12%-04T18:17:32[+-]%d%d:%d%d$"), one.time)
  end)
end)
