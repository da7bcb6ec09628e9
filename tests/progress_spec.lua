-- Callbacks that receive borg's records while it runs, and the progress
-- line the host draws on a terminal.

local core = require "borg.core"
local helpers = require "helpers"
local progress = require "borg.progress"

describe("callbacks", function()
  local dir, api, repo

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("on_progress fires while borg reads stdin", function()
    -- borg reports progress at most every 0.2 s, and reading 256 MiB
    -- takes longer than that, so records arrive before the source ends.
    local chunk, total, sent = string.rep("\0", 1024 * 1024), 256, 0
    local sent_at_progress, live_at_progress
    local records = {}
    local _, run = api.create({ repo .. "::data", "-" }, {
      stdin = function()
        if sent == total then
          return nil
        end
        sent = sent + 1
        return chunk
      end,
      on_progress = function(record)
        records[#records + 1] = record
        if record.type == "archive_progress" and not record.finished
            and sent_at_progress == nil then
          sent_at_progress, live_at_progress = sent, core.live()
        end
      end,
    })
    assert.are.equal(total, sent)
    assert.is_not_nil(sent_at_progress, "no archive_progress record arrived")
    assert.is_true(sent_at_progress < total,
      "the first progress record came after the whole stream was sent")
    assert.are.equal(1, live_at_progress)
    -- on_progress alone asks borg for progress records
    local has_flag = false
    for _, word in ipairs(run.argv) do
      has_flag = has_flag or word == "--progress"
    end
    assert.is_true(has_flag)
    -- the last archive_progress record carries only finished, time and type
    local last
    for _, record in ipairs(records) do
      if record.type == "archive_progress" then
        last = record
      end
    end
    assert.is_true(last.finished)
    assert.is_nil(last.nfiles)
    assert.is_nil(last.original_size)
  end)

  it("on_file fires while borg runs", function()
    local src = helpers.source_tree(dir)
    local live = {}
    api.create({ repo .. "::a", src, list = true }, { on_file = function(record)
      live[#live + 1] = core.live()
      assert.is_string(record.path)
    end })
    assert.are.equal(5, #live)
    assert.are.equal(1, live[1])
  end)

  it("on_log receives borg's warnings", function()
    local src = helpers.source_tree(dir)
    local records = {}
    local _, run = api.create({ repo .. "::a", src, dir .. "/missing" },
      { on_log = function(record)
        records[#records + 1] = record
      end })
    assert.are.equal("warning", run.status)
    assert.are.equal(1, #records)
    assert.are.equal("WARNING", records[1].levelname)
    assert.matches("missing", records[1].message, 1, true)
  end)
end)

describe("progress line", function()
  -- Return a line with its clock started now, writing into a table.
  local function new_line()
    local written = {}
    local out = {
      write = function(self, ...)
        for _, text in ipairs { ... } do
          written[#written + 1] = text
        end
        return self
      end,
      flush = function() end,
    }
    return progress.new("create", out), written
  end

  it("shows files, size, time and path", function()
    local line = new_line()
    line:merge { type = "archive_progress", nfiles = 12, original_size = 3 * 1024 * 1024,
      path = "home/a.txt", finished = false, time = 1 }
    assert.are.equal("borg create: 12 files, 3.0 MiB, 0:00 home/a.txt", line:text(80))
  end)

  it("keeps the counters of a record without them", function()
    local line = new_line()
    line:merge { type = "archive_progress", nfiles = 3, original_size = 10, path = "a",
      finished = false, time = 1 }
    assert.is_true(line:merge { type = "archive_progress", finished = true, time = 2 })
    assert.are.equal("borg create: 3 files, 10 B, 0:00 a", line:text(80))
  end)

  it("accepts records of every shape", function()
    local line = new_line()
    local shapes = {
      { type = "archive_progress", finished = true, time = 1 },
      { type = "progress_message", operation = 1, msgid = "cache.commit",
        finished = true, time = 1 },
      { type = "progress_message", message = "Saving files cache", finished = false },
      { type = "progress_percent", current = 2, total = 18, finished = false },
      { type = "progress_percent", finished = true, time = 1 },
      { type = "archive_progress" },
      { type = "progress_percent", message = { "not", "text" } },
    }
    for _, record in ipairs(shapes) do
      line:merge(record)
      assert.is_string(line:text(80))
    end
  end)

  it("shows a percent record's message or counts", function()
    local line = new_line()
    line:merge { type = "progress_percent", message = "Checking segments 5.6%",
      current = 1, total = 18, finished = false }
    assert.are.equal("borg create: Checking segments 5.6%, 0:00", line:text(80))
    line:merge { type = "progress_percent", current = 2, total = 18, finished = false }
    assert.are.equal("borg create: 2 of 18, 0:00", line:text(80))
  end)

  it("fits the terminal width and hides control bytes", function()
    local line = new_line()
    line:merge { type = "archive_progress", nfiles = 1, original_size = 1,
      path = "dir/" .. string.rep("x", 100) .. "/new\nline", finished = false }
    local text = line:text(60)
    assert.are.equal(59, #text)
    assert.matches("%.%.%.x+/new%?line$", text)
  end)

  it("draws over itself and clears at the end", function()
    local line, written = new_line()
    line:update { type = "archive_progress", nfiles = 1, original_size = 1, path = "a" }
    line:clear()
    assert.are.equal("\r\27[K", written[1])
    assert.matches("^borg create: 1 files", written[2])
    assert.are.equal("\r\27[K", written[#written])
  end)
end)

describe("progress line on a terminal", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
    local src = helpers.source_tree(dir)
    helpers.write(dir .. "/policy.lua", string.format([[
      local api = borg.new{ env = { BORG_BASE_DIR = %q, BORG_SELFTEST = "disabled" } }
      api.init{ %q, encryption = "none" }
      api.create{ %q, %q, progress = true }
      io.stdout:write("after\n")
    ]], dir .. "/base", dir .. "/repo", dir .. "/repo::a", src))
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("is drawn and cleared on a terminal", function()
    local command = helpers.quote(helpers.borglua) .. " " .. helpers.quote(dir .. "/policy.lua")
    helpers.shell("cd " .. helpers.quote(dir) .. " && script -qec "
      .. helpers.quote(command) .. " typescript >/dev/null 2>&1")
    local screen = helpers.read(dir .. "/typescript")
    local first = screen:find("\r\27[Kborg create: ", 1, true)
    assert.is_not_nil(first, screen)
    local last_clear = select(2, screen:find(".*\r\27%[K"))
    local after = screen:find("after", 1, true)
    assert.is_true(last_clear < after, "the line was not cleared before the output")
    assert.falsy(screen:sub(last_clear + 1, after - 1):find("borg create:", 1, true))
  end)

  it("is not drawn when stderr is not a terminal", function()
    local output = helpers.shell(helpers.quote(helpers.borglua) .. " "
      .. helpers.quote(dir .. "/policy.lua") .. " 2>&1")
    assert.are.equal("after\n", output:match("after\n$"))
    assert.falsy(output:find("borg create:", 1, true), output)
    assert.falsy(output:find("\27[K", 1, true), output)
  end)
end)
