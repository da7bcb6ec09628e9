-- The option catalogue is generated from the installed borg's own
-- argument parser; a borg upgrade that changes an option shows up here.

local catalogue = require "borg.catalogue"
local helpers = require "helpers"

-- Return the strings of list joined by spaces ("" for nil).
local function joined(list)
  return table.concat(list or {}, " ")
end

-- Return a command's positionals as text: name[min,max] for each.
local function positionals(spec)
  local parts = {}
  for _, p in ipairs(spec.positionals) do
    parts[#parts + 1] = string.format("%s[%d,%d]", p.name, p.min, p.max)
  end
  return "(" .. table.concat(parts, " ") .. ")"
end

-- Return the differences between two catalogues as lines of text.
local function differences(committed, generated)
  local lines = {}
  local function note(fmt, ...)
    lines[#lines + 1] = string.format(fmt, ...)
  end
  if committed.version ~= generated.version then
    note("borg version: %s in the catalogue, %s installed", committed.version,
      generated.version)
  end
  local names = {}
  for name in pairs(committed.commands) do
    names[name] = true
  end
  for name in pairs(generated.commands) do
    names[name] = true
  end
  for name in pairs(names) do
    local old, new = committed.commands[name], generated.commands[name]
    if old == nil then
      note("command %s: new in the installed borg", name)
    elseif new == nil then
      note("command %s: gone from the installed borg", name)
    else
      for option, spec in pairs(new.options) do
        local was = old.options[option]
        if was == nil then
          note("%s: option %s is new", name, option)
        elseif was.kind ~= spec.kind or was.type ~= spec.type then
          note("%s: option %s changed from %s/%s to %s/%s", name, option, was.kind,
            tostring(was.type), spec.kind, tostring(spec.type))
        elseif was.bare ~= spec.bare then
          note("%s: option %s %s takes a bare form", name, option,
            spec.bare and "now" or "no longer")
        elseif joined(was.choices) ~= joined(spec.choices) then
          note("%s: option %s changed its choices from {%s} to {%s}", name, option,
            joined(was.choices), joined(spec.choices))
        end
      end
      if joined(old.words) ~= joined(new.words) then
        note("%s: command words changed from '%s' to '%s'", name, joined(old.words),
          joined(new.words))
      end
      if positionals(old) ~= positionals(new) then
        note("%s: positionals changed from %s to %s", name, positionals(old),
          positionals(new))
      end
      for option in pairs(old.options) do
        if new.options[option] == nil then
          note("%s: option %s is gone", name, option)
        end
      end
    end
  end
  table.sort(lines)
  return lines
end

-- Each committed catalogue, the program whose parser it comes from, and the
-- generator's arguments.
local CATALOGUES = {
  { file = "catalogue.lua", module = "borg.catalogue", target = "catalogue",
    python = os.getenv("BORG_PYTHON") or "/usr/bin/python3", arguments = "" },
  { file = "catalogue2.lua", module = "borg.catalogue2", target = "catalogue2",
    python = os.getenv("BORG2_PYTHON") or "/usr/bin/python3",
    arguments = " --target catalogue2 --path "
      .. helpers.quote(os.getenv("BORG2_PATH") or "/usr/lib/borgbackup2") },
}

describe("the option catalogue", function()
  for _, case in ipairs(CATALOGUES) do
    it(case.file .. " matches the installed parser", function()
      local text, status = helpers.shell(helpers.quote(case.python) .. " "
        .. helpers.quote(helpers.top .. "/scripts/gen-catalogue.py") .. case.arguments)
      assert.are.equal(0, status)
      local generated = assert(load(text, "=generated catalogue"))()
      local drift = differences(require(case.module), generated)
      assert.are.equal("", table.concat(drift, "\n"),
        "the catalogue differs from the installed borg; run `make " .. case.target .. "`")
      assert.are.equal(helpers.read(helpers.top .. "/lua/borg/" .. case.file), text)
    end)
  end

  it("names each option that drifted", function()
    -- A copy of the catalogue as a borg upgrade might change it.
    local copy = assert(load(helpers.read(helpers.top .. "/lua/borg/catalogue.lua")))()
    copy.commands.create.options.compression = nil
    copy.commands.create.options.zstd_level = { kind = "value", type = "integer" }
    copy.commands.prune.options.keep_daily.type = "string"
    copy.commands.init.options.encryption.choices[1] = "rot13"
    copy.commands.mount.positionals[2].min = 0
    copy.commands.key_export.words = { "key-export" }
    copy.commands.rename = nil
    assert.are.same({
      "command rename: new in the installed borg",
      "create: option compression is new",
      "create: option zstd_level is gone",
      "init: option encryption changed its choices from {rot13 keyfile repokey"
        .. " authenticated keyfile-blake2 repokey-blake2 authenticated-blake2} to"
        .. " {none keyfile repokey authenticated keyfile-blake2 repokey-blake2"
        .. " authenticated-blake2}",
      "key_export: command words changed from 'key-export' to 'key export'",
      "mount: positionals changed from (location[1,1] mountpoint[0,1] paths[0,-1]) to"
        .. " (location[1,1] mountpoint[1,1] paths[0,-1])",
      "prune: option keep_daily changed from value/string to value/integer",
    }, differences(copy, catalogue))
  end)

  it("describes options by kind and value type", function()
    local create = catalogue.commands.create
    assert.are.same({ "create" }, create.words)
    assert.are.same({ kind = "flag" }, create.options.stats)
    assert.are.same({ kind = "value", type = "string" }, create.options.compression)
    assert.are.same({ kind = "repeatable", type = "string" }, create.options.exclude)
    assert.are.same({ kind = "value", type = "integer" },
      catalogue.commands.prune.options.keep_daily)
    assert.are.same({ "key", "export" }, catalogue.commands.key_export.words)
  end)
end)
