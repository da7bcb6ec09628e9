-- Back up the bytes of a file as one archive item, fed to borg's stdin by
-- a Lua function in chunks of 1 MiB, and print the processor seconds of
-- this process (os.clock), for the streaming row of the benchmark:
--
--   borglua tests/bench/stream_create.lua REPO::ARCHIVE FILE

local borg = require "borg"

local location, path = ...
assert(location and path, "usage: stream_create.lua REPO::ARCHIVE FILE")
local file = assert(io.open(path, "rb"))
borg.create({ location, "-" }, {
  stdin = function()
    return file:read(1024 * 1024)
  end,
})
file:close()
io.write(os.clock(), "\n")
