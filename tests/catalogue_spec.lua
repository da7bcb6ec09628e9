-- The option catalogue is generated from the installed borg's own
-- argument parser; a borg upgrade that changes an option shows up here.

local catalogue = require "borg.catalogue"
local helpers = require "helpers"

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
        end
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

describe("the option catalogue", function()
  it("matches the installed borg's parser", function()
    local python = os.getenv("BORG_PYTHON") or "/usr/bin/python3"
    local text, status = helpers.shell(helpers.quote(python) .. " "
      .. helpers.quote(helpers.top .. "/scripts/gen-catalogue.py"))
    assert.are.equal(0, status)
    local generated = assert(load(text, "=generated catalogue"))()
    local drift = differences(catalogue, generated)
    assert.are.equal("", table.concat(drift, "\n"),
      "the catalogue differs from the installed borg; run `make catalogue`")
    assert.are.equal(helpers.read(helpers.top .. "/lua/borg/catalogue.lua"), text)
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
