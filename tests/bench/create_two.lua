-- Back up one source tree into two repositories, side by side with
-- borg.parallel or one after the other, for the parallel row of the
-- benchmark:
--
--   borglua tests/bench/create_two.lua parallel|sequential REPO1 REPO2 SOURCE

local borg = require "borg"

local mode, first, second, source = ...
assert(mode == "parallel" or mode == "sequential", "mode must be parallel or sequential")

local function backup(repo)
  return function()
    return borg.create { repo .. "::bench", source }
  end
end

if mode == "parallel" then
  local results, failed = borg.parallel { backup(first), backup(second) }
  if failed > 0 then
    error(results[1].error or results[2].error, 0)
  end
else
  backup(first)()
  backup(second)()
end
