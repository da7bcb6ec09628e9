-- The version of a borg program, probed once per program and process.

local core = require "borg.core"
local env = require "borg.env"
local errors = require "borg.errors"
local process = require "borg.process"

local versions = {} -- program -> version table, probed once per process

-- Return the version of program as { major, minor, patch, string };
-- vars is the environment to run it with ({ NAME = value }).
local function probe(program, vars)
  if versions[program] then
    return versions[program]
  end
  process.check_interrupted("version")
  local proc, errname, message = core.spawn {
    file = program, args = { program, "--version" }, env = env.list(vars or env.host()),
    stdout = "whole", timeout = 60,
  }
  if proc == nil then
    process.spawn_error("version", program, errname, message, { program, "--version" })
  end
  local text, rc = "", nil
  repeat
    local kind, data = proc:read(true)
    if kind == "stdout" then
      text = data
    elseif kind == "exit" then
      rc = data
    end
  until kind == "exit"
  local major, minor, patch, rest = text:match("(%d+)%.(%d+)%.(%d+)(%S*)")
  if rc ~= 0 or major == nil then
    error(errors.new { kind = "borg", command = "version", rc = rc,
      message = string.format("'%s --version' printed no version: %q", program,
        text:sub(1, 200)) }, 0)
  end
  local version = {
    major = tonumber(major), minor = tonumber(minor), patch = tonumber(patch),
    string = major .. "." .. minor .. "." .. patch .. rest,
    program = program,
  }
  versions[program] = version
  return version
end

return probe
