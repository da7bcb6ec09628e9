-- The version of a borg program, probed once per program and process.
--
-- For borg 2 the probe also reads the program's help, because the betas
-- name their repository commands differently: 2.0.0b5 has rcreate, rlist,
-- rinfo, rdelete and rcompress, later betas repo-create, repo-list and so
-- on. The help lists the commands the program has, whatever its version
-- number says.

local core = require "borg.core"
local env = require "borg.env"
local errors = require "borg.errors"
local process = require "borg.process"
local scheduler = require "borg.scheduler"

local versions = {} -- program -> version table, probed once per process

-- Run program with args and return what it wrote on stdout and its exit
-- status. A program that cannot start raises a "spawn" error for command.
local function output_of(program, args, vars, command)
  process.check_interrupted(command)
  local argv = { program }
  table.move(args, 1, #args, 2, argv)
  local proc, errname, message = core.spawn {
    file = program, args = argv, env = env.list(vars or env.host()),
    stdout = "whole", timeout = 60,
  }
  if proc == nil then
    process.spawn_error(command, program, errname, message, argv)
  end
  local text, rc = "", nil
  repeat
    local kind, data = scheduler.read(proc)
    if kind == "stdout" then
      text = data
    elseif kind == "exit" then
      rc = data
    end
  until kind == "exit"
  return text, rc
end

-- Return "repo-" when the help of a borg 2 program lists repo-create,
-- else "r" (rcreate and its siblings).
local function repository_prefix(program, vars, command)
  local text = output_of(program, { "--help" }, vars, command)
  if text:find("%f[%w%-]repo%-create%f[^%w%-]") then
    return "repo-"
  end
  return "r"
end

-- Return the version of program as { major, minor, patch, string,
-- program }, plus repository_prefix for borg 2 ("r" or "repo-"); vars is
-- the environment to run it with ({ NAME = value }). command names the
-- call that needed the version, for a spawn error (default "version").
local function probe(program, vars, command)
  if versions[program] then
    return versions[program]
  end
  command = command or "version"
  local text, rc = output_of(program, { "--version" }, vars, command)
  local major, minor, patch, rest = text:match("(%d+)%.(%d+)%.(%d+)(%S*)")
  if rc ~= 0 or major == nil then
    error(errors.new { kind = "borg", command = command, rc = rc,
      message = string.format("'%s --version' printed no version: %q", program,
        text:sub(1, 200)) }, 0)
  end
  local version = {
    major = tonumber(major), minor = tonumber(minor), patch = tonumber(patch),
    string = major .. "." .. minor .. "." .. patch .. rest,
    program = program,
  }
  if version.major >= 2 then
    version.repository_prefix = repository_prefix(program, vars, command)
  end
  versions[program] = version
  return version
end

return probe
