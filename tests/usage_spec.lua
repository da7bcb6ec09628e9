-- Misuse raises a usage error with an exact message, before anything runs.
-- A stand-in borg records every call, so the specs can prove it never ran.

local borg = require "borg"
local helpers = require "helpers"

describe("usage errors", function()
  local dir, api, argv_path

  before_each(function()
    dir = helpers.tmpdir()
    api, argv_path = helpers.fake_instance(dir)
  end)

  after_each(function()
    assert.are.equal(0, helpers.recorded_calls(argv_path))
    helpers.rmdir(dir)
  end)

  -- Call fn and return the error object it raised.
  local function usage_error(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    assert.is_true(borg.is_error(err), "expected an error object, got " .. tostring(err))
    assert.are.equal("usage", err.kind)
    return err
  end

  local cases = {
    { "a non-table argument", function() api.create("x") end,
      "create", "expected a table of arguments, got string \"x\" (call it as"
        .. " borg.create{ ... })" },
    { "no argument at all", function() api.list() end,
      "list", "expected a table of arguments, got no value (call it as borg.list{ ... })" },
    { "a run argument that is not a table", function() api.check({ "/r" }, 5) end,
      "check", "the second argument (how to run) must be a table, got integer 5" },
    { "an unknown option", function() api.create { "/r::a", "/s", compresion = "lz4" } end,
      "create", "unknown option 'compresion' (did you mean 'compression'?)" },
    { "a flag given a string", function() api.create { "/r::a", "/s", stats = "yes" } end,
      "create", "option 'stats' is a flag and takes true or false, got string \"yes\"" },
    { "a value option given a table",
      function() api.create { "/r::a", "/s", compression = { "lz4" } } end,
      "create", "option 'compression' takes a single value, got a table" },
    { "an integer option given text", function() api.prune { "/r", keep_daily = "abc" } end,
      "prune", "option 'keep_daily' expects an integer, got string \"abc\"" },
    { "an integer option given a float", function() api.prune { "/r", keep_daily = 7.5 } end,
      "prune", "option 'keep_daily' expects an integer, got float 7.5" },
    { "a value outside the choices", function() api.init { "/r", encryption = "rot13" } end,
      "init", "option 'encryption' must be one of none, keyfile, repokey, authenticated,"
        .. " keyfile-blake2, repokey-blake2, authenticated-blake2, got string \"rot13\"" },
    { "a NUL byte in a positional", function() api.create { "/r::a", "/s\0x" } end,
      "create", "positional argument 2 contains a NUL byte, which cannot be passed to"
        .. " borg in an argument vector" },
    { "a NUL byte in an option value",
      function() api.create { "/r::a", "/s", comment = "a\0b" } end,
      "create", "option 'comment' contains a NUL byte, which cannot be passed to borg in"
        .. " an argument vector" },
    { "a hole in the positionals", function() api.create { "/r::a", nil, "/x" } end,
      "create", "positional argument 2 is missing (nil in the middle of the argument list)" },
    { "a table as a positional", function() api.create { "/r::a", {} } end,
      "create", "positional argument 2 is a table; run options go in a second table"
        .. " after the arguments, as in borg.create({ ... }, { timeout = 60 })" },
    { "a boolean as a positional", function() api.create { "/r::a", true } end,
      "create", "positional argument 2 must be a string or an integer, got boolean true" },
    { "a run option among the arguments", function() api.create { "/r::a", timeout = 9 } end,
      "create", "'timeout' is a run option: give it in a second table after the"
        .. " arguments, as in borg.create({ ... }, { timeout = ... })" },
    { "a missing positional", function() api.rename { "/r::a" } end,
      "rename", "the positional argument 'name' is missing (borg rename needs at least 2)" },
    { "a missing archive", function() api.create {} end,
      "create", "the positional argument 'location' is missing (borg create needs at"
        .. " least 1)" },
    { "a create without paths", function() api.create { "/r::a" } end,
      "create", "no path to back up: give at least one path after the archive, as in"
        .. " borg.create{ \"repo::name\", \"/home\" }" },
    { "too many positionals", function() api.rename { "/r::a", "b", "c" } end,
      "rename", "takes at most 2 positional arguments, got 3" },
    { "a \"-\" path without stdin", function() api.create { "/r::a", "-" } end,
      "create", "positional argument 2 is \"-\", which reads data from stdin, but the run"
        .. " table has no 'stdin' (give it the data to send)" },
    { "a \"--\" positional", function() api.create { "/r::a", "--", "-x" } end,
      "create", "positional argument 2 is \"--\", which borg's parser drops; write"
        .. " \"./--\" for a file of that name" },
    { "paths_from_stdin without stdin",
      function() api.create { "/r::a", paths_from_stdin = true } end,
      "create", "option 'paths_from_stdin' reads the paths from stdin, but the run table"
        .. " has no 'stdin' (give it the paths to back up)" },
    { "import_tar of \"-\" without stdin", function() api.import_tar { "/r::a", "-" } end,
      "import_tar", "positional argument 2 is \"-\", which reads data from stdin, but the"
        .. " run table has no 'stdin' (give it the data to send)" },
    { "a timeout that is not a number",
      function() api.check({ "/r" }, { timeout = 0 / 0 }) end,
      "check", "run option 'timeout' must be a positive number of seconds, got float "
        .. tostring(0 / 0) },
    { "a NUL byte in cwd", function() api.check({ "/r" }, { cwd = "/\0x" }) end,
      "check", "run option 'cwd' contains a NUL byte" },
    { "an unknown run option",
      function() api.create({ "/r::a", "/s" }, { timout = 3 }) end,
      "create", "unknown run option 'timout' (did you mean 'timeout'?)" },
    { "a bad timeout", function() api.create({ "/r::a", "/s" }, { timeout = "3" }) end,
      "create", "run option 'timeout' must be a positive number of seconds, got string \"3\"" },
    { "a bad log level", function() api.list { "/r", log_level = "loud" } end,
      "list", "log_level must be one of debug, info, warning, error, critical, got string"
        .. " \"loud\"" },
    { "a key that is not a string", function() api.create { "/r::a", "/s", [true] = 1 } end,
      "create", "option names must be strings, got a boolean true key" },
    { "a repeatable option given a map",
      function() api.create { "/r::a", "/s", exclude = { "a", x = 1 } } end,
      "create", "option 'exclude' takes an array of values, got a table with key string \"x\"" },
    { "a bad environment value",
      function() api.check({ "/r" }, { env = { A = {} } }) end,
      "check", "run option 'env' value of A must be a string, a number or false (to remove"
        .. " it), got table" },
    { "config without a change", function() api.config { "/r" } end,
      "config", "no change given: after the repository give a name to read, { name,"
        .. " value } to set, or list = true, as in borg.config{ repo, \"append_only\","
        .. " { \"storage_quota\", \"5G\" } }" },
    { "a config change of a wrong type", function() api.config { "/r", 5 } end,
      "config", "change 1 must be a name (to read it) or { name, value } (to set it),"
        .. " got integer 5" },
    { "a config pair with a table value",
      function() api.config { "/r", { "append_only", {} } } end,
      "config", "change 1 must be a name or { name, value } with a string or integer"
        .. " value, got a table that is neither" },
    { "a config pair with delete",
      function() api.config { "/r", { "append_only", "1" }, delete = true } end,
      "config", "change 1 sets a value, but delete = true deletes settings: give only"
        .. " names" },
    { "with_lock with an empty argv", function() api.with_lock { "/r", {} } end,
      "with_lock", "the program's argv array is empty: give the program and its"
        .. " arguments, as in { \"sh\", \"-c\", \"...\" }" },
    { "with_lock with argv and positionals",
      function() api.with_lock { "/r", { "true" }, "x" } end,
      "with_lock", "give the program either as one array or as positionals after the"
        .. " repository, not both" },
    { "with_lock without a program", function() api.with_lock { "/r" } end,
      "with_lock", "the positional argument 'command' is missing (borg with-lock needs"
        .. " at least 2)" },
    { "mount without a mount point", function() api.mount { "/r::a" } end,
      "mount", "the positional argument 'mountpoint' is missing (borg mount needs at"
        .. " least 2)" },
    { "mount with a timeout", function() api.mount({ "/r::a", "/mnt" }, { timeout = 5 }) end,
      "mount", "run option 'timeout' would stop the mount while it is in use; unmount"
        .. " with handle:umount() instead" },
    { "key_import of \"-\" without stdin", function() api.key_import { "/r", "-" } end,
      "key_import", "positional argument 2 is \"-\", which reads data from stdin, but the"
        .. " run table has no 'stdin' (give it the data to send)" },
    { "key_import with paper", function() api.key_import { "/r", "k", paper = true } end,
      "key_import", "option 'paper' makes borg ask for the key line by line on a"
        .. " terminal; give the exported key file instead" },
    { "an unknown option of a two-word command",
      function() api.key_export { "/r", qr_htm = true } end,
      "key_export", "unknown option 'qr_htm' (did you mean 'qr_html'?)" },
    { "a flag of serve given a string",
      function() api.serve { append_only = "yes" } end,
      "serve", "option 'append_only' is a flag and takes true or false, got string \"yes\"" },
  }

  for _, case in ipairs(cases) do
    local name, fn, command, message = case[1], case[2], case[3], case[4]
    it("rejects " .. name, function()
      local err = usage_error(fn)
      assert.are.equal(command, err.command)
      assert.are.equal(message, err.message)
    end)
  end

  it("names an unknown command and the nearest one", function()
    local err = usage_error(function() return api.craete end)
    assert.is_nil(err.command)
    assert.are.equal("unknown command 'craete' (did you mean 'create'?)", err.message)
  end)

  it("answers a huge unknown option name without a suggestion", function()
    local name = string.rep("x", 100000)
    local err = usage_error(api.rename, { "/r::a", "b", [name] = 1 })
    assert.truthy(err.message:find("^unknown option 'xxxx"))
    assert.falsy(err.message:find("did you mean", 1, true))
  end)

  it("lists the accepted options when no name is close", function()
    local err = usage_error(api.rename, { "/r::a", "b", zzzzzzzz = 1 })
    assert.are.equal("unknown option 'zzzzzzzz' (borg rename accepts: bypass_lock,"
      .. " consider_part_files, critical, debug, debug_profile, debug_topic, error, iec,"
      .. " info, lock_wait, log_json, progress, remote_buffer, remote_path,"
      .. " remote_ratelimit, rsh, show_rc, show_version, umask, upload_buffer,"
      .. " upload_ratelimit, verbose, warning)", err.message)
  end)

  it("points at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() api.create { "/r::a", "/s", compresion = 1 } end)
    assert.is_false(ok)
    assert.are.equal("tests/usage_spec.lua:" .. line, err.where)
    assert.are.equal("tests/usage_spec.lua:" .. line .. ": borg create: unknown option"
      .. " 'compresion' (did you mean 'compression'?)", tostring(err))
  end)

  it("rejects unknown instance settings", function()
    local err = usage_error(borg.new, { defualts = {} })
    assert.are.equal("unknown setting 'defualts' (did you mean 'defaults'?)", err.message)
  end)

  it("rejects an option no command accepts", function()
    local err = usage_error(borg.new, { options = { lock_wiat = 5 } })
    assert.are.equal("new", err.command)
    assert.are.equal("option 'lock_wiat' in setting 'options' is not accepted by any"
      .. " borg command (did you mean 'lock_wait'?)", err.message)
  end)

  it("rejects an unknown option in defaults", function()
    local err = usage_error(borg.new, { defaults = { create = { compresion = "lz4" } } })
    assert.are.equal("defaults.create has unknown option 'compresion' (did you mean"
      .. " 'compression'?)", err.message)
  end)

  it("rejects a cwd that does not exist", function()
    local err = usage_error(api.check, { "/r" }, { cwd = dir .. "/missing" })
    assert.are.equal("run option 'cwd' is not an existing directory: string \""
      .. dir .. "/missing\"", err.message)
  end)

  it("rejects defaults for an unknown command", function()
    local err = usage_error(borg.new, { defaults = { craete = {} } })
    assert.are.equal("defaults for unknown command 'craete' (did you mean 'create'?)",
      err.message)
  end)
end)
