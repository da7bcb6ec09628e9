-- Streams of the run table (stdin sources and stdout sinks) and the
-- callbacks that receive borg's records while it runs, against the real
-- borg.

local core = require "borg.core"
local helpers = require "helpers"

-- Return the host's resident set size in KiB.
local function rss_kib()
  local status = helpers.read("/proc/self/status")
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

-- Return the SHA-256 of a file, as sha256sum prints it.
local function sha256(path)
  return (helpers.shell("sha256sum " .. helpers.quote(path)):match("^(%x+)"))
end

describe("run-table stdin and stdout", function()
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

  it("passes random binary data through unchanged", function()
    local input, output = dir .. "/random.bin", dir .. "/out.bin"
    os.execute("head -c 3000000 /dev/urandom > " .. helpers.quote(input))
    local file = assert(io.open(input, "rb"))
    local _, run = api.create({ repo .. "::data", "-", stdin_name = "random.bin" },
      { stdin = file })
    file:close()
    assert.are.equal(3000000, run.stdin_bytes)
    local sink = assert(io.open(output, "wb"))
    local result, extracted = api.extract(
      { repo .. "::data", "random.bin", stdout = true }, { stdout = sink })
    sink:close()
    assert.is_nil(result)
    assert.are.equal(3000000, extracted.stdout_bytes)
    assert.are.equal(sha256(input), sha256(output))
  end)

  it("reads a function source to its end", function()
    local pieces, calls = { "alpha ", "", "bravo ", "charlie" }, 0
    api.create({ repo .. "::text", "-" }, { stdin = function()
      calls = calls + 1
      return pieces[calls]
    end })
    assert.are.equal(5, calls)
    local chunks = {}
    api.extract({ repo .. "::text", stdout = true }, { stdout = function(chunk)
      chunks[#chunks + 1] = chunk
    end })
    assert.are.equal("alpha bravo charlie", table.concat(chunks))
  end)

  it("reads a source only as fast as borg consumes it", function()
    -- 128 MiB of one repeated chunk: borg deduplicates it quickly, and a
    -- host that read ahead would hold most of it in memory.
    local chunk, total, sent = string.rep("0123456789abcdef", 65536), 128, 0
    local before, peak = rss_kib(), 0
    api.create({ repo .. "::big", "-" }, { stdin = function()
      peak = math.max(peak, rss_kib())
      if sent == total then
        return nil
      end
      sent = sent + 1
      return chunk
    end })
    assert.are.equal(total, sent)
    assert.is_true(peak - before < 48 * 1024,
      string.format("host RSS grew by %d KiB", peak - before))
  end)

  it("bounds host memory while a sink is slow", function()
    local input = dir .. "/random.bin"
    os.execute("head -c 67108864 /dev/urandom > " .. helpers.quote(input))
    local file = assert(io.open(input, "rb"))
    api.create({ repo .. "::data", "-", stdin_name = "random.bin" }, { stdin = file })
    file:close()
    os.remove(input)
    local before, peak, bytes, stalled = rss_kib(), 0, 0, false
    api.extract({ repo .. "::data", stdout = true }, { stdout = function(data)
      bytes = bytes + #data
      if not stalled then
        -- Another borg call runs the event loop while this sink has not
        -- returned, so borg's output piles up unless reading pauses.
        stalled = true
        api.list { repo }
      end
      peak = math.max(peak, rss_kib())
    end })
    assert.are.equal(67108864, bytes)
    assert.is_true(peak - before < 32 * 1024,
      string.format("host RSS grew by %d KiB", peak - before))
  end)

  it("streams export_tar into import_tar", function()
    local src = helpers.source_tree(dir)
    api.create { repo .. "::a", src }
    local tar = dir .. "/a.tar"
    local sink = assert(io.open(tar, "wb"))
    local result = api.export_tar({ repo .. "::a", "-" }, { stdout = sink })
    sink:close()
    assert.is_nil(result)
    local source = assert(io.open(tar, "rb"))
    api.import_tar({ repo .. "::b", "-" }, { stdin = source })
    source:close()
    local paths = {}
    for _, item in ipairs(api.list { repo .. "::b" }) do
      paths[#paths + 1] = item.path
    end
    table.sort(paths)
    local rel = src:sub(2)
    assert.are.same({ rel, rel .. "/a.txt", rel .. "/b.txt", rel .. "/sub",
      rel .. "/sub/c.txt" }, paths)
  end)

  it("streams key_export into key_import", function()
    local keyed = helpers.instance(dir, { env = { BORG_PASSPHRASE = "pw" } })
    keyed.init { dir .. "/enc", encryption = "repokey" }
    local chunks = {}
    keyed.key_export({ dir .. "/enc", "-" }, { stdout = function(chunk)
      chunks[#chunks + 1] = chunk
    end })
    local key = table.concat(chunks)
    assert.matches("^BORG_KEY %x+\n", key)
    local _, run = keyed.key_import({ dir .. "/enc", "-" }, { stdin = key })
    assert.are.equal(0, run.rc)
    assert.are.equal(#key, run.stdin_bytes)
  end)

  it("a source that returns a table raises and stops borg", function()
    local ok, err = pcall(api.create, { repo .. "::bad", "-" },
      { stdin = function() return {} end })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("'stdin' function returned table", err.message, 1, true)
    assert.are.equal(0, core.live())
  end)

  it("closes stdin when borg ends before the source", function()
    local pid = helpers.read("/proc/self/stat"):match("^(%d+)")
    local function open_fds()
      return #helpers.shell("ls /proc/" .. pid .. "/fd"):gsub("[^\n]", "")
    end
    local function sigpipe_ignored()
      local mask = helpers.read("/proc/self/status"):match("SigIgn:%s*(%x+)")
      return tonumber(mask, 16) & (1 << 12) ~= 0
    end
    local endless = function()
      return string.rep("x", 65536)
    end
    -- The garbage collector would close a forgotten pipe sooner or later.
    collectgarbage("stop")
    local before = open_fds()
    for _ = 1, 3 do
      local ok, err = pcall(api.import_tar, { dir .. "/missing::x", "-" },
        { stdin = endless })
      assert.is_false(ok)
      assert.are.equal("borg", err.kind)
    end
    local after = open_fds()
    local ignored = sigpipe_ignored()
    collectgarbage("restart")
    -- An earlier spec's descriptor may close meanwhile, so fewer is fine.
    assert.is_true(after <= before, string.format("%d descriptors open before,"
      .. " %d after", before, after))
    assert.is_false(ignored, "SIGPIPE is still ignored after borg ended")
  end)

  it("a sink for a call without data on stdout is a usage error", function()
    local ok, err = pcall(api.list, { repo }, { stdout = io.stdout })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("this call writes none", err.message, 1, true)
  end)

  it("stdin of the wrong type is a usage error", function()
    local ok, err = pcall(api.create, { repo .. "::x", "-" }, { stdin = 42 })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.matches("run option 'stdin' must be a string, an open file handle", err.message,
      1, true)
  end)
end)

describe("streams inside borg.parallel", function()
  local dir, api

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    api.init { dir .. "/one", encryption = "none" }
    api.init { dir .. "/two", encryption = "none" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("feeds two stdin sources side by side", function()
    local borg = require "borg"
    -- 8 MiB each: more than fits in the pipe, so each source waits for
    -- "writable" events while the other function runs.
    local function source(byte)
      local chunk, left = string.rep(byte, 1024 * 1024), 8
      return function()
        left = left - 1
        return left >= 0 and chunk or nil
      end
    end
    local results, failed = borg.parallel {
      function()
        return api.create({ dir .. "/one::a", "-" }, { stdin = source("1") })
      end,
      function()
        return api.create({ dir .. "/two::a", "-" }, { stdin = source("2") })
      end,
    }
    assert.are.equal(0, failed)
    assert.are.equal(8 * 1024 * 1024, results[1][2].stdin_bytes)
    assert.are.equal(8 * 1024 * 1024, results[2][2].stdin_bytes)
    for _, name in ipairs { "one", "two" } do
      local bytes = {}
      api.extract({ dir .. "/" .. name .. "::a", stdout = true }, { stdout = function(chunk)
        bytes[#bytes + 1] = chunk
      end })
      local data = table.concat(bytes)
      assert.are.equal(8 * 1024 * 1024, #data)
      assert.are.equal(name == "one" and "1" or "2", data:sub(1, 1))
    end
  end)

  it("iterates inside a parallel function", function()
    local borg = require "borg"
    local src = helpers.source_tree(dir)
    api.create { dir .. "/one::a", src }
    local results, failed = borg.parallel {
      function()
        local n = 0
        for _ in api.iter.list { dir .. "/one::a" } do
          n = n + 1
        end
        return n
      end,
      function()
        return #api.list { dir .. "/one::a" }
      end,
    }
    assert.are.equal(0, failed)
    assert.are.equal(results[2][1], results[1][1])
    assert.is_true(results[1][1] >= 5)
  end)
end)
