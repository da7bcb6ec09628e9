-- borg.format: figures as text for people.

local borg = require "borg"

describe("borg.format", function()
  local size, duration = borg.format.size, borg.format.duration

  it("writes sizes with binary units", function()
    assert.are.equal("0 B", size(0))
    assert.are.equal("512 B", size(512))
    assert.are.equal("1.0 KiB", size(1024))
    assert.are.equal("31.2 MiB", size(31.2 * 1024 * 1024))
    assert.are.equal("-976 B", size(-976))
    assert.are.equal("2.0 GiB", size(2 * 1024 ^ 3))
  end)

  it("accepts fractional bytes", function()
    assert.are.equal("333 B", size(1000 / 3))
    assert.are.equal("2 B", size(1.5))
  end)

  it("writes durations in seconds and minutes", function()
    assert.are.equal("0.4 s", duration(0.4))
    assert.are.equal("59.0 s", duration(59))
    assert.are.equal("2 min 5 s", duration(125))
  end)

  it("writes ? for what is not a finite number", function()
    assert.are.equal("?", size(nil))
    assert.are.equal("?", size(0 / 0))
    assert.are.equal("?", size(math.huge))
    assert.are.equal("?", duration("soon"))
    assert.are.equal("?", duration(0 / 0))
    assert.are.equal("?", duration(-math.huge))
  end)
end)
