-- How a call's Lua table becomes borg's argument vector, seen through a
-- stand-in borg that records its arguments.

local helpers = require "helpers"

describe("argument vector", function()
  local dir, api, argv_path

  before_each(function()
    dir = helpers.tmpdir()
    api, argv_path = helpers.fake_instance(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  local function recorded()
    return helpers.recorded_argv(argv_path)
  end

  it("puts the command, --log-json, options and then positionals after --", function()
    api.create { "/r::a", "/home", "/etc", compression = "zstd,3", stats = false }
    assert.are.same({ "create", "--log-json", "--compression=zstd,3", "--",
                      "/r::a", "/home", "/etc" }, recorded())
  end)

  it("gives a flag for true and nothing for false", function()
    api.prune { "/r", dry_run = true, list = false, keep_daily = 7 }
    assert.are.same({ "prune", "--log-json", "--dry-run", "--keep-daily=7", "--", "/r" },
      recorded())
  end)

  it("turns underscores into dashes and sorts the options", function()
    api.init { "/r", make_parent_dirs = true, storage_quota = "5G",
               encryption = "none", append_only = true }
    assert.are.same({ "init", "--log-json", "--append-only", "--encryption=none",
                      "--make-parent-dirs", "--storage-quota=5G", "--", "/r" }, recorded())
  end)

  it("repeats a repeatable option once per value", function()
    api.create { "/r::a", "/src", exclude = { "*.tmp", "*/.cache" },
                 exclude_if_present = ".nobackup" }
    assert.are.same({ "create", "--log-json", "--exclude=*.tmp", "--exclude=*/.cache",
                      "--exclude-if-present=.nobackup", "--", "/r::a", "/src" }, recorded())
  end)

  it("keeps a path that starts with a dash a positional", function()
    api.create { "/r::a", "-rf", "--help" }
    assert.are.same({ "create", "--log-json", "--", "/r::a", "-rf", "--help" },
      recorded())
  end)

  it("passes integers as decimal text", function()
    api.create { "/r::a", "/src", checkpoint_interval = 600, lock_wait = 0 }
    local argv = recorded()
    assert.are.equal("--checkpoint-interval=600", argv[3])
    assert.are.equal("--lock-wait=0", argv[4])
  end)

  it("passes an integer positional as text", function()
    api.rename { "/r::a", 2026 }
    assert.are.same({ "rename", "--log-json", "--", "/r::a", "2026" }, recorded())
  end)

  it("passes values with = and spaces unchanged", function()
    api.create { "/r::a", "/my files", comment = "a = b, c" }
    assert.are.same({ "create", "--log-json", "--comment=a = b, c", "--", "/r::a",
                      "/my files" }, recorded())
  end)

  it("adds no -- when there are no positionals", function()
    local inst = helpers.fake_instance(dir, { env = { BORG_REPO = "/r",
                                                      FAKE_BORG_STDOUT = "{}" } })
    inst.list {}
    assert.are.same({ "list", "--log-json", "--json" }, recorded())
  end)

  it("maps log_level to borg's level flag", function()
    api.check { "/r", log_level = "debug" }
    assert.are.same({ "check", "--log-json", "--debug", "--", "/r" }, recorded())
  end)

  it("gives init encryption=repokey unless something sets it", function()
    api.init { "/r" }
    assert.are.same({ "init", "--log-json", "--encryption=repokey", "--", "/r" },
      recorded())
  end)

  it("asks for JSON where that is how borg gives the data", function()
    local inst = helpers.fake_instance(dir, { env = { FAKE_BORG_STDOUT = "{}" } })
    inst.create { "/r::a", "/src", stats = true }
    assert.are.same({ "create", "--log-json", "--json", "--", "/r::a", "/src" },
      recorded())
    inst.info { "/r" }
    assert.are.same({ "info", "--log-json", "--json", "--", "/r" }, recorded())
    inst.list { "/r" }
    assert.are.same({ "list", "--log-json", "--json", "--", "/r" }, recorded())
    inst.list { "/r::a" }
    assert.are.same({ "list", "--log-json", "--json-lines", "--", "/r::a" }, recorded())
  end)

  it("runs the instance's program with the words of a two-word command", function()
    api.break_lock { "/r" }
    assert.are.same({ "break-lock", "--log-json", "--", "/r" }, recorded())
    api.key_export { "/r", "/tmp/key" }
    assert.are.same({ "key", "export", "--log-json", "--", "/r", "/tmp/key" }, recorded())
  end)

  it("raises a decode error when promised JSON is missing", function()
    local ok, err = pcall(api.info, { "/r" })
    assert.is_false(ok)
    assert.are.equal("decode", err.kind)
    assert.are.equal(0, err.rc)
    assert.are.equal("borg's output is not valid JSON: borg exited with status 0 and"
      .. " wrote nothing", err.message)
  end)

  it("raises a decode error for invalid JSON", function()
    local inst = helpers.fake_instance(dir, { env = { FAKE_BORG_STDOUT = "{\"a\": " } })
    local ok, err = pcall(inst.info, { "/r" })
    assert.is_false(ok)
    assert.are.equal("decode", err.kind)
    assert.truthy(err.message:find("^borg's output is not valid JSON: "))
  end)

  it("raises a decode error for an invalid JSON line", function()
    local inst = helpers.fake_instance(dir, {
      env = { FAKE_BORG_STDOUT = "{\"path\": \"a\"}\nnot json\n" } })
    local ok, err = pcall(inst.list, { "/r::a" })
    assert.is_false(ok)
    assert.are.equal("decode", err.kind)
    assert.truthy(err.message:find("^borg's output line is not valid JSON: "))
  end)

  it("raises a signal error without rc when borg is killed", function()
    local inst = helpers.fake_instance(dir, { env = { FAKE_BORG_SIGNAL = "KILL" } })
    local ok, err = pcall(inst.check, { "/r" })
    assert.is_false(ok)
    assert.are.equal("signal", err.kind)
    assert.are.equal(9, err.signal)
    assert.is_nil(err.rc)
    assert.are.equal("borg was killed by SIGKILL", err.message)
  end)

  it("passes an optional-value option bare for true", function()
    api.recreate { "/r::a", recompress = true }
    assert.are.same({ "recreate", "--log-json", "--recompress", "--", "/r::a" },
      recorded())
    api.recreate { "/r::a", recompress = "always" }
    assert.are.same({ "recreate", "--log-json", "--recompress=always", "--", "/r::a" },
      recorded())
  end)

  it("hands every log record to on_log, errors included", function()
    local inst = helpers.fake_instance(dir, { env = {
      FAKE_BORG_EXIT = "2",
      FAKE_BORG_STDERR = '{"type": "log_message", "levelname": "ERROR", "name": "x",'
        .. ' "message": "Data integrity error: checksum mismatch"}',
    } })
    local seen = {}
    local ok, err = pcall(inst.check, { "/r" }, { on_log = function(record)
      seen[#seen + 1] = record.levelname .. " " .. record.message
    end })
    assert.is_false(ok)
    assert.are.same({ "ERROR Data integrity error: checksum mismatch" }, seen)
    assert.are.equal("data integrity error: checksum mismatch", err.message)
  end)

  it("raises when stdout passes the size kept in memory", function()
    local call = require "borg.call"
    local saved = call.MAX_STDOUT
    call.MAX_STDOUT = 10
    local inst = helpers.fake_instance(dir, { env = { FAKE_BORG_STDOUT = "0123456789ab" } })
    local ok, err = pcall(inst.key_export, { "/r" })
    call.MAX_STDOUT = saved
    assert.is_false(ok)
    assert.are.equal("decode", err.kind)
    assert.are.equal("borg wrote more than 10 B on stdout, the most borglua keeps in"
      .. " memory", err.message)
  end)

  it("leaves the host's descriptors as they were", function()
    local file = assert(io.open(dir .. "/kept-open", "w"))
    local pid = helpers.shell("echo $PPID"):gsub("%s", "")
    local fd = helpers.shell("ls -l /proc/" .. pid .. "/fd | grep kept-open"
      .. " | sed 's/.* \\([0-9]*\\) -> .*/\\1/'"):gsub("%s", "")
    local function flags()
      return helpers.read("/proc/" .. pid .. "/fdinfo/" .. fd):match("flags:%s*(%d+)")
    end
    local before = flags()
    api.check { "/r" }
    local after = flags()
    file:close()
    assert.are.equal(before, after)
  end)

  it("reports the argv it ran in run.argv", function()
    local _, run = api.check { "/r" }
    assert.are.same({ helpers.fake_borg, "check", "--log-json", "--", "/r" }, run.argv)
    assert.are.equal(0, run.rc)
    assert.are.equal("ok", run.status)
  end)
end)

describe("instances", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("merge options < defaults < call, dropping options a command lacks", function()
    local api, argv_path = helpers.fake_instance(dir, {
      options = { lock_wait = 5, exclude_from = "ex.txt", strip_components = 2 },
      defaults = { create = { compression = "lz4", stats = false } },
    })
    api.create { "/r::a", "/src", lock_wait = 9 }
    assert.are.same({ "create", "--log-json", "--compression=lz4",
                      "--exclude-from=ex.txt", "--lock-wait=9", "--", "/r::a", "/src" },
      helpers.recorded_argv(argv_path))
    api.check { "/r" }
    assert.are.same({ "check", "--log-json", "--lock-wait=5", "--", "/r" },
      helpers.recorded_argv(argv_path))
  end)

  it("lets a call value of false remove an inherited flag", function()
    local api, argv_path = helpers.fake_instance(dir, {
      defaults = { prune = { list = true, dry_run = true } },
    })
    api.prune { "/r", dry_run = false, keep_last = 1 }
    assert.are.same({ "prune", "--log-json", "--keep-last=1", "--list", "--", "/r" },
      helpers.recorded_argv(argv_path))
  end)

  it("pass strip_components to extract but not to diff", function()
    local api, argv_path = helpers.fake_instance(dir, {
      options = { strip_components = 1 },
    })
    api.extract { "/r::a" }
    assert.are.same({ "extract", "--log-json", "--strip-components=1", "--", "/r::a" },
      helpers.recorded_argv(argv_path))
    api.diff { "/r::a", "b" }
    assert.are.same({ "diff", "--log-json", "--json-lines", "--", "/r::a", "b" },
      helpers.recorded_argv(argv_path))
  end)

  it("run config once per change, in order", function()
    local api, argv_path = helpers.fake_instance(dir, { options = { lock_wait = 3 } })
    local values = api.config { "/r", "a", { "b", 2 }, "c", list = true }
    assert.are.equal(4, helpers.recorded_calls(argv_path))
    assert.are.same({ "", "" }, values.changes)
    assert.are.same({ "config", "--log-json", "--list", "--lock-wait=3", "--", "/r" },
      helpers.recorded_argv(argv_path))
  end)

  it("give with_lock an argv array as positionals", function()
    local api, argv_path = helpers.fake_instance(dir)
    api.with_lock { "/r", { "rsync", "-a", "--delete", "/r", "/copy" } }
    assert.are.same({ "with-lock", "--log-json", "--", "/r", "rsync", "-a", "--delete",
                      "/r", "/copy" }, helpers.recorded_argv(argv_path))
  end)

  it("run serve without --log-json", function()
    local api, argv_path = helpers.fake_instance(dir, { log_level = "info" })
    api.serve { restrict_to_path = { "/a", "/b" }, append_only = true }
    assert.are.same({ "serve", "--info", "--append-only", "--restrict-to-path=/a",
                      "--restrict-to-path=/b" }, helpers.recorded_argv(argv_path))
  end)

  -- Run a chunk in the borglua program with a fake borg that logs one
  -- warning record; return what the program wrote on stderr.
  local function host_stderr(settings, call_args)
    local record = '{"type": "log_message", "levelname": "WARNING", "name": "borg.x",'
      .. ' "message": "disk nearly full"}'
    local chunk = string.format("borg.new{ borg = %q, %s }.check{ %s }",
      helpers.fake_borg, settings, call_args)
    return helpers.shell("FAKE_BORG_STDERR=" .. helpers.quote(record) .. " "
      .. helpers.quote(helpers.borglua) .. " -e " .. helpers.quote(chunk)
      .. " 2>&1 >/dev/null")
  end

  it("print borg's log as readable lines by default", function()
    assert.are.equal("borg check: warning: disk nearly full\n",
      host_stderr("", "'/r'"))
  end)

  it("print borg's log as JSON lines with log_json", function()
    local line = host_stderr("log_json = true", "'/r'")
    local record = require("cjson").decode(line)
    assert.are.equal("disk nearly full", record.message)
    assert.are.equal("WARNING", record.levelname)
    assert.are.equal("log_message", record.type)
  end)

  it("let a call choose log_json over the instance", function()
    assert.are.equal("borg check: warning: disk nearly full\n",
      host_stderr("log_json = true", "'/r', log_json = false"))
    local line = host_stderr("", "'/r', log_json = true")
    assert.truthy(line:find('^{.*"disk nearly full"'), line)
  end)

  it("hide records below the critical level", function()
    assert.are.equal("", host_stderr("log_level = 'critical'", "'/r'"))
  end)

  it("accept both api:cmd{} and api.cmd{}", function()
    local api, argv_path = helpers.fake_instance(dir)
    api:check { "/one" }
    assert.are.equal("/one", helpers.recorded_argv(argv_path)[4])
    api.check { "/two" }
    assert.are.equal("/two", helpers.recorded_argv(argv_path)[4])
  end)

  it("use their own log level", function()
    local api, argv_path = helpers.fake_instance(dir, { log_level = "info" })
    api.check { "/r" }
    assert.are.same({ "check", "--log-json", "--info", "--", "/r" },
      helpers.recorded_argv(argv_path))
    api.check { "/r", log_level = "warning" }
    assert.are.same({ "check", "--log-json", "--", "/r" },
      helpers.recorded_argv(argv_path))
  end)
end)
