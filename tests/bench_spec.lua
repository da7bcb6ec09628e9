-- The benchmark with tiny sizes, so that its rows keep working: every
-- row runs and prints its figures. Speed is judged only by `make bench`.

local helpers = require "helpers"

describe("make bench in smoke mode", function()
  it("prints a figure for every row", function()
    local output, status = helpers.shell("BENCH_SMOKE=1 " .. helpers.quote(helpers.borglua)
      .. " " .. helpers.quote(helpers.top .. "/tests/bench/run.lua") .. " 2>&1")
    assert.are.equal(0, status, output)
    assert.matches("borglua bench %(smoke", output)
    -- Row ids with a measured result in the fourth column onwards.
    -- Rows with a goal show "smoke" where a full run judges it.
    local rows = {
      ["1a"] = "smoke", ["1b"] = "smoke", ["1c"] = "-", ["2a"] = "smoke", ["2b"] = "smoke",
      ["3a"] = "smoke", ["3b"] = "smoke", ["4a"] = "smoke", ["4b"] = "smoke",
      ["4c"] = "-", ["4d"] = "-", ["5"] = "smoke",
    }
    for id, verdict in pairs(rows) do
      local line = output:match("\n| " .. id .. " +|[^\n]*")
      assert.is_not_nil(line, "row " .. id .. " is missing:\n" .. output)
      assert.matches("[×+-]%s?%d+%.%d+", line)
      local escaped = verdict:gsub("%p", "%%%0")
      assert.matches("| " .. escaped .. " +|$", line)
    end
    -- The memory rows give MiB, not a ratio.
    for _, id in ipairs { "3c", "3d" } do
      local line = output:match("\n| " .. id .. " +|[^\n]*")
      assert.is_not_nil(line, "row " .. id .. " is missing:\n" .. output)
      assert.matches("| [%d.]+ MiB +|", line)
      assert.matches("| smoke +|$", line)
    end
    assert.matches("whole benchmark: %d+ s", output)
  end)
end)
