-- Consume every item of an archive with borg.iter.list and print the
-- item count, the peak resident memory of this process (VmHWM, KiB) and
-- its processor seconds (os.clock), for the listing row of the benchmark:
--
--   borglua tests/bench/iterate_list.lua REPO::ARCHIVE

local borg = require "borg"

local location = assert(..., "usage: iterate_list.lua REPO::ARCHIVE")
local count = 0
for _ in borg.iter.list { location } do
  count = count + 1
end
local status = assert(io.open("/proc/self/status")):read("a")
io.write(count, " ", assert(status:match("VmHWM:%s*(%d+) kB")), " ", os.clock(), "\n")
