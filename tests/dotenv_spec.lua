-- The .env reader against python-dotenv: each case of
-- tests/fixtures/dotenv_cases.json holds a text and what python-dotenv's
-- dotenv_values made of it (regenerate with tests/dotenv_values.py
-- --write). When python3-dotenv is installed, the spec also checks that
-- the stored values are still what it returns.

local borg = require "borg"
local dotenv = require "borg.dotenv"
local helpers = require "helpers"
local json = require "borg.json"

local FIXTURE = helpers.top .. "/tests/fixtures/dotenv_cases.json"
local BASE = { DOTENV_OUTER = "outer value" }
local PYTHON = "/usr/bin/python3"

local cases = json.decode(assert(helpers.read(FIXTURE)))

-- Return the pairs of a parse result as { { name, value or json null } }.
local function pairs_of(result)
  local list = {}
  for i, item in ipairs(result) do
    list[i] = { item.name, item.value == nil and json.null or item.value }
  end
  return list
end

local function python_has_dotenv()
  local _, status = helpers.shell(PYTHON .. " -c 'import dotenv' 2>/dev/null")
  return status == 0
end

describe("dotenv.parse", function()
  for _, case in ipairs(cases) do
    if case.error_line == json.null then
      it("reads " .. case.name .. " as python-dotenv does", function()
        assert.are.same(case.values, pairs_of(dotenv.parse(case.text, BASE)))
      end)
    else
      it("rejects " .. case.name .. " at its line", function()
        local ok, err = pcall(dotenv.parse, case.text, BASE, "test.env")
        assert.is_false(ok)
        assert.is_true(borg.is_error(err))
        assert.are.equal("usage", err.kind)
        assert.truthy(err.message:find("test.env line " .. case.error_line .. ":", 1,
          true), err.message)
      end)
    end
  end

  it("keeps the fixture in step with python-dotenv", function()
    if not python_has_dotenv() then
      pending("python3-dotenv is not installed")
      return
    end
    local output, status = helpers.shell("env -i DOTENV_OUTER='outer value' " .. PYTHON
      .. " " .. helpers.quote(helpers.top .. "/tests/dotenv_values.py") .. " < "
      .. helpers.quote(FIXTURE) .. " 2>/dev/null")
    assert.are.equal(0, status)
    local computed = json.decode(output)
    assert.are.equal(#cases, #computed)
    for i, case in ipairs(cases) do
      assert.are.same(case, computed[i])
    end
  end)
end)

describe("dotenv.find", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("returns the nearest .env above a directory", function()
    os.execute("mkdir -p " .. helpers.quote(dir .. "/a/b/c"))
    helpers.write(dir .. "/a/.env", "A=1\n")
    assert.are.equal(dir .. "/a/.env", dotenv.find(dir .. "/a/b/c"))
    helpers.write(dir .. "/a/b/.env", "A=2\n")
    assert.are.equal(dir .. "/a/b/.env", dotenv.find(dir .. "/a/b/c/"))
  end)

  it("reports a file it cannot read", function()
    local ok, err = pcall(dotenv.load, dir .. "/missing.env", {})
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal("cannot read the .env file " .. dir .. "/missing.env: No such"
      .. " file or directory", err.message)
  end)
end)
