-- The policy layer: plan mode, dry runs, the run lock, reports, state,
-- retries, hooks, the retention simulator and the spot check, on the
-- real borg.

local borg = require "borg"
local helpers = require "helpers"
local json = require "borg.json"
local policy = require "borg.policy"
local retention = require "borg.retention"
local state = require "borg.state"
local sys = require "borg.sys"

local quote = helpers.quote

-- Environment assignments for a borglua child run from the shell: the
-- clean environment of helpers.clean_env, as "NAME=value" words for env.
local function env_words(dir, extra)
  local unset, set = {}, {}
  for name, value in pairs(helpers.clean_env(dir, extra)) do
    if value == false then
      unset[#unset + 1] = "-u " .. name
    else
      set[#set + 1] = quote(name .. "=" .. value)
    end
  end
  table.sort(unset)
  table.sort(set)
  return table.concat(unset, " ") .. " " .. table.concat(set, " ")
end

-- Run `borglua args...` with the clean environment; return stdout,
-- stderr and the exit status.
local function borglua(dir, args, extra)
  local err = dir .. "/stderr.txt"
  local out, status = helpers.shell("env " .. env_words(dir, extra) .. " "
    .. quote(helpers.borglua) .. " " .. args .. " 2>" .. quote(err))
  return out, helpers.read(err) or "", status
end

-- Parse the label set of a sample, {name="value",...}, with its escapes.
local function parse_labels(body, n)
  local parsed, pos = {}, 1
  while pos <= #body do
    local name, start = body:match('^([%a_][%w_]*)="()', pos)
    assert(name, "line " .. n .. ": bad label at " .. body:sub(pos))
    local value, i = {}, start
    while true do
      local c = body:sub(i, i)
      assert(c ~= "", "line " .. n .. ": unterminated label value")
      if c == "\\" then
        local e = body:sub(i + 1, i + 1)
        assert(e == "n" or e == "\\" or e == '"', "line " .. n .. ": bad escape")
        value[#value + 1] = e == "n" and "\n" or e
        i = i + 2
      elseif c == '"' then
        i = i + 1
        break
      else
        value[#value + 1] = c
        i = i + 1
      end
    end
    assert(parsed[name] == nil, "line " .. n .. ": label repeated")
    parsed[name] = table.concat(value)
    pos = i
    if body:sub(pos, pos) == "," then
      pos = pos + 1
    else
      assert(pos > #body, "line " .. n .. ": junk after a label")
    end
  end
  return parsed
end

-- Parse Prometheus exposition text strictly enough to catch malformed
-- lines; return { [name] = { type =, help =, samples = { { labels, value } } } }
-- or raise naming the bad line.
local function parse_exposition(text)
  local metrics, series = {}, {}
  local n = 0
  assert(text:sub(-1) == "\n", "the exposition must end with a newline")
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.*)$")
    if kind then
      metrics[name] = metrics[name] or { samples = {} }
      if kind == "TYPE" then
        assert(rest == "gauge" or rest == "counter" or rest == "untyped",
          "line " .. n .. ": bad type " .. rest)
        assert(#metrics[name].samples == 0, "line " .. n .. ": TYPE after samples")
        metrics[name].type = rest
      elseif kind == "HELP" then
        metrics[name].help = rest
      end
    else
      local mname, labels, value = line:match("^([%a_:][%w_:]*)(%b{}) (%S+)$")
      assert(mname, "line " .. n .. " is not a sample: " .. line)
      assert(metrics[mname] and metrics[mname].type,
        "line " .. n .. ": sample of " .. mname .. " before its TYPE")
      local number = tonumber(value) or (value == "NaN" and 0 / 0)
      assert(number, "line " .. n .. ": bad value " .. value)
      assert(not series[mname .. labels], "line " .. n .. ": duplicate series")
      series[mname .. labels] = true
      table.insert(metrics[mname].samples,
        { labels = parse_labels(labels:sub(2, -2), n), value = number })
    end
  end
  return metrics
end

describe("plan mode", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("prints each invocation with secrets masked and runs nothing", function()
    local script = dir .. "/plan.lua"
    helpers.write(script, [[
      local borg = require "borg"
      local repo = ...
      print("planning", borg.planning)
      borg.init{ repo, encryption = "repokey" }
      local r, run = borg.create({ repo .. "::home-{now}", "/etc", json = true },
                                 { cwd = "/tmp", env = { BORG_PASSPHRASE = "hunter2-sekrit" } })
      print("name", tostring(r.archive.name), "status", run.status)
      local n = 0
      for _ in ipairs(borg.list{ repo }) do n = n + 1 end
      print("items", n)
    ]])
    local out, err, status = borglua(dir, "--plan " .. quote(script) .. " "
      .. quote(dir .. "/repo"))
    assert.are.equal(0, status, err)
    assert.matches("planning\ttrue", out, 1, true)
    assert.matches("borg init --log-json --encryption=repokey -- " .. dir .. "/repo",
      out, 1, true)
    assert.matches("borg create --log-json --json -- " .. dir .. "/repo::home-{now} /etc",
      out, 1, true)
    assert.matches("  cwd: /tmp", out, 1, true)
    assert.matches("the passphrase (********)", out, 1, true)
    assert.matches("name\t<planned create.archive.name>\tstatus\tplanned", out, 1, true)
    assert.matches("items\t0", out, 1, true)
    assert.is_nil(out:find("hunter2", 1, true))
    assert.is_nil(err:find("hunter2", 1, true))
    assert.is_nil(helpers.read(dir .. "/repo/config"), "plan mode created a repository")
  end)

  it("still refuses a bad call before printing it", function()
    local script = dir .. "/bad.lua"
    helpers.write(script, 'require("borg").create{ "r::a", "/etc", compresion = "lz4" }\n')
    local out, err, status = borglua(dir, "--plan " .. quote(script))
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("did you mean 'compression'", err, 1, true)
  end)

  it("lets borg.dry_run pass --dry-run only where borg has it", function()
    local api = helpers.instance(dir)
    local repo = dir .. "/repo"
    local src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    borg.dry_run = true
    local ok, err = pcall(function()
      local _, run = api.create { repo .. "::a", src }
      assert.is_truthy(table.concat(run.argv, " "):find("--dry-run", 1, true))
      local _, list_run = api.list { repo }
      assert.is_falsy(table.concat(list_run.argv, " "):find("--dry-run", 1, true))
    end)
    borg.dry_run = false
    assert(ok, tostring(err))
    assert.are.same({}, api.list { repo }.archives)
    assert.has_error(function() borg.dry_run = "yes" end)
  end)

  it("skips commands without --dry-run under borg.dry_run", function()
    local repo = dir .. "/repo"
    local src = helpers.source_tree(dir)
    local script = dir .. "/dry.lua"
    helpers.write(script, string.format([[
      local repo, src = %q, %q
      borg.init { repo, encryption = "none" }
      borg.create { repo .. "::a", src }
      borg.dry_run = true
      local created = borg.create { repo .. "::b", src, json = true }
      print("create", created.archive.name)
      borg.rename { repo .. "::a", "renamed" }
      borg.compact { repo }
      borg.init { repo .. "2", encryption = "none" }
      borg.check { repo, repair = true }
      local names = {}
      for _, archive in ipairs(borg.list { repo }.archives) do
        names[#names + 1] = archive.name
      end
      print("archives", table.concat(names, " "))
    ]], repo, src))
    local out, err, status = borglua(dir, quote(script))
    assert.are.equal(0, status, err)
    assert.are.equal("create\t<planned create.archive.name>\narchives\ta\n", out)
    for _, command in ipairs { "rename", "compact", "init", "check" } do
      assert.truthy(err:find("borglua: borg " .. command .. ": not run, because borg.dry_run"
        .. " is on and " .. command .. " has no --dry-run:\nborg " .. command, 1, true), err)
    end
    assert.is_nil(io.open(repo .. "2/config"))
  end)
end)

describe("the run lock", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  local function holder_script(seconds)
    local script = dir .. "/holder.lua"
    helpers.write(script, string.format([[
      local policy = require "borg.policy"
      policy.run({ name = "holder", lock = %q }, function()
        io.open(%q, "w"):close()
        require("borg.sys").sleep(%g)
      end)
    ]], dir .. "/lock", dir .. "/holding", seconds))
    return script
  end

  local function start_holder(seconds)
    os.execute(quote(helpers.borglua) .. " " .. quote(holder_script(seconds))
      .. " >/dev/null 2>&1 &")
    for _ = 1, 200 do
      if helpers.read(dir .. "/holding") then
        return
      end
      sys.sleep(0.05)
    end
    error("the holder did not start")
  end

  it("reports exit status 143 after SIGTERM", function()
    helpers.write(dir .. "/term.lua", string.format([[
      local policy = require "borg.policy"
      local api = borg.new { borg = %q, env = { HANG_BORG_PID = %q } }
      policy.run({ name = "spec", report = %q }, function(p)
        p:step("check", function() return api.check { "/r" } end)
      end)
    ]], helpers.top .. "/tests/bin/hang-borg", dir .. "/borg.pid", dir .. "/term.json"))
    local output = helpers.shell("cd " .. quote(dir) .. " && (" .. quote(helpers.borglua)
      .. " term.lua 2>/dev/null & host=$!; for i in $(seq 100); do [ -s borg.pid ] &&"
      .. " break; sleep 0.1; done; kill -TERM $host; wait $host; echo \"status $?\")")
    assert.are.equal("status 143\n", output)
    local status = json.decode(helpers.read(dir .. "/term.json"))
    assert.are.equal(143, status.exit_status)
    assert.are.equal("failed", status.status)
  end)

  it("refuses an overlapping run with a clear message", function()
    start_holder(3)
    local ok, err = pcall(policy.run, { name = "nightly", lock = dir .. "/lock" },
      function() error("the body ran") end)
    assert.is_false(ok)
    assert.are.equal("busy", err.kind)
    assert.matches("policy nightly: another run %(pid %d+%) holds the lock", err.message)
    assert.matches("did not start", err.message, 1, true)
  end)

  it("waits for the lock up to lock_wait", function()
    start_holder(1)
    local ran = false
    policy.run({ name = "nightly", lock = dir .. "/lock", lock_wait = 30 },
      function() ran = true end)
    assert.is_true(ran)
  end)

  it("takes over a lock file left by a dead process", function()
    -- A pid that is surely not running: the child of a shell that ended.
    local dead = helpers.shell("sh -c 'echo $$'"):match("%d+")
    helpers.write(dir .. "/lock", dead .. "\n")
    local script = dir .. "/p.lua"
    helpers.write(script, string.format([[
      require("borg.policy").run({ name = "n", lock = %q }, function() print("ran") end)
    ]], dir .. "/lock"))
    local out, err, status = borglua(dir, quote(script))
    assert.are.equal(0, status, err)
    assert.are.equal("ran\n", out)
    assert.matches("took over the lock .* left by pid " .. dead, err)
    assert.are.equal("", helpers.read(dir .. "/lock"))
  end)
end)

describe("a policy run", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  local function settings(extra)
    local config = { name = "spec", state = dir .. "/state.json",
                     report = dir .. "/status.json", textfile = dir .. "/borg.prom" }
    for k, v in pairs(extra or {}) do
      config[k] = v
    end
    return config
  end

  it("writes a JSON status file and a valid Prometheus textfile", function()
    local summary = policy.run(settings(), function(p)
      p:step("backup", { series = "src" }, function()
        return api.create { repo .. "::src-{now}", src, json = true }
      end)
      p:step("list", function() return api.list { repo } end)
    end)
    assert.are.equal("ok", summary.status)
    local status = json.decode(helpers.read(dir .. "/status.json"))
    assert.are.equal("spec", status.policy)
    assert.are.equal(0, status.exit_status)
    assert.are.equal("backup", status.steps[1].name)
    assert.are.equal("create", status.steps[1].calls[1].command)
    assert.are.equal(repo, status.steps[1].calls[1].repository)
    assert.are.equal(0, status.steps[1].calls[1].rc)
    assert.are.equal(3, status.backups[1].files)

    local metrics = parse_exposition(helpers.read(dir .. "/borg.prom"))
    local files = metrics.borglua_backup_files.samples[1]
    assert.are.equal(3, files.value)
    assert.are.same({ policy = "spec", repository = repo, series = "src" }, files.labels)
    assert.is_true(metrics.borglua_backup_original_size_bytes.samples[1].value > 6000)
    assert.is_true(metrics.borglua_backup_deduplicated_size_bytes.samples[1].value > 0)
    assert.are.equal(0, metrics.borglua_policy_exit_status.samples[1].value)
    local last = metrics.borglua_backup_last_success_timestamp_seconds.samples[1].value
    assert.is_true(math.abs(last - os.time()) < 600)
    -- Nothing but the three files: no temporary file is left beside them.
    local listing = helpers.shell("ls -A " .. quote(dir))
    assert.is_nil(listing:find("%.borg%.prom%.") or listing:find("%.status%.json%."))
  end)

  it("reports a failed step, keeps the last success, and raises the error", function()
    policy.run(settings(), function(p)
      p:step("backup", { series = "src" }, function()
        return api.create { repo .. "::src-{now}", src, json = true }
      end)
    end)
    local first = json.decode(helpers.read(dir .. "/state.json"))
    local ok, err = pcall(policy.run, settings(), function(p)
      p:step("backup", { series = "src" }, function()
        return api.create { dir .. "/missing::src-{now}", src, json = true }
      end)
    end)
    assert.is_false(ok)
    assert.are.equal("Repository.DoesNotExist", err.msgid)
    local status = json.decode(helpers.read(dir .. "/status.json"))
    assert.are.equal("failed", status.status)
    assert.are.equal(2, status.exit_status)
    assert.are.equal("failed", status.steps[1].status)
    assert.are.equal("Repository.DoesNotExist", status.steps[1].calls[1].msgid)
    local metrics = parse_exposition(helpers.read(dir .. "/borg.prom"))
    assert.are.equal(2, metrics.borglua_policy_exit_status.samples[1].value)
    assert.are.equal(0, metrics.borglua_step_success.samples[1].value)
    assert.is_not_nil(first.tasks.policy.success)
  end)

  it("runs hooks in order and names the step of a failing hook", function()
    local order = {}
    local function log(what)
      return function() order[#order + 1] = what end
    end
    local went_on = false
    local failed, failure = pcall(policy.run, { name = "hooks", before = log("policy before"),
                 after = log("policy after") }, function(p)
      p:step("one", { before = log("one before"), after = log("one after") },
        log("one body"))
      p:step("two", { keep_going = true, on_error = log("two on_error"),
                      after = log("two after") }, function() error("boom") end)
      went_on = true
    end)
    assert.are.same({ "policy before", "one before", "one body", "one after",
                      "two on_error", "policy after" }, order)
    -- keep_going went on after the failure, and the run still failed.
    assert.is_true(went_on)
    assert.is_false(failed)
    assert.are.equal("policy", failure.kind)
    assert.matches("1 of 2 steps failed: step 'two': .*boom", failure.message)

    local ok, err = pcall(policy.run, { name = "hooks" }, function(p)
      p:step("backup home", { before = function() error("no network") end },
        function() error("the body ran") end)
    end)
    assert.is_false(ok)
    assert.are.equal("hook", err.kind)
    assert.are.equal("backup home", err.step)
    assert.matches("before hook of step 'backup home' failed: .*no network",
      tostring(err))
  end)

  it("calls the policy's on_error hook with the error", function()
    local seen
    local ok = pcall(policy.run, { name = "e", on_error = function(_, err) seen = err end },
      function() api.list { dir .. "/missing" } end)
    assert.is_false(ok)
    assert.are.equal("Repository.DoesNotExist", seen.msgid)
  end)

  it("runs a step only when it is due, by the state between runs", function()
    local runs = 0
    local function run_policy()
      return policy.run(settings(), function(p)
        p:every("check", 7, function() api.check { repo }; runs = runs + 1 end)
      end)
    end
    run_policy()
    local summary = run_policy()
    assert.are.equal(1, runs)
    assert.are.equal("skipped", summary.steps[1].status)
    -- A week later it is due again.
    local store = state.open(dir .. "/state.json")
    store:done("check", os.time() - 8 * 86400)
    store:save()
    run_policy()
    assert.are.equal(2, runs)
  end)
end)

describe("the state store", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("keeps values and times between opens", function()
    local store = state.open(dir .. "/s.json")
    assert.is_true(store:due("check", 7))
    store:done("check", 1000)
    store:success("backup", 2000)
    store:set("note", { a = 1 })
    store:save()
    local again = state.open(dir .. "/s.json")
    assert.is_false(again:due("check", 7, 1000 + 6 * 86400))
    assert.is_true(again:due("check", 7, 1000 + 7 * 86400))
    assert.are.equal(2000, again:last_success("backup"))
    assert.are.same({ a = 1 }, again:get("note"))
  end)

  it("refuses a damaged file instead of replacing it", function()
    helpers.write(dir .. "/s.json", "{ not json")
    local ok, err = pcall(state.open, dir .. "/s.json")
    assert.is_false(ok)
    assert.matches("is not a JSON object", err.message)
    assert.are.equal("{ not json", helpers.read(dir .. "/s.json"))
  end)
end)

describe("retries", function()
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

  it("says on stderr when it tries again", function()
    helpers.write(dir .. "/retry.lua", [[
      local errors = require "borg.errors"
      local calls = 0
      print(require("borg.retry").call(function()
        calls = calls + 1
        if calls == 1 then
          error(errors.new { kind = "borg", command = "list", rc = 2,
                             msgid = "LockTimeout", message = "the lock is held" }, 0)
        end
        return "done"
      end, { attempts = 2, delay = 0.01 }))
    ]])
    local out, err, status = borglua(dir, quote(dir .. "/retry.lua"))
    assert.are.equal(0, status, err)
    assert.are.equal("done\n", out)
    assert.truthy(err:find("borglua: borg list: the lock is held (LockTimeout, rc 2)", 1, true),
      err)
    assert.truthy(err:find("attempt 1 of 2 failed, trying again in 0.01 s\n", 1, true), err)
  end)

  it("retries a lock timeout until the lock is free", function()
    -- Another borg holds the repository's lock for about 2 seconds.
    os.execute("env " .. env_words(dir) .. " borg with-lock " .. quote(repo)
      .. " sh -c 'touch " .. quote(dir .. "/locked") .. "; sleep 2' >/dev/null 2>&1 &")
    for _ = 1, 200 do
      if helpers.read(dir .. "/locked") then break end
      sys.sleep(0.05)
    end
    local attempts = 0
    local result = policy.retry.call(function()
      attempts = attempts + 1
      return api.list { repo, lock_wait = 1 }
    end, { attempts = 10, delay = 0.5, backoff = 1 })
    assert.are.same({}, result.archives)
    assert.is_true(attempts >= 2, "the first attempt should have timed out")
  end)

  it("raises a lasting error at once", function()
    local attempts = 0
    local ok, err = pcall(policy.retry.call, function()
      attempts = attempts + 1
      return api.list { dir .. "/missing" }
    end, { attempts = 5, delay = 0 })
    assert.is_false(ok)
    assert.are.equal("Repository.DoesNotExist", err.msgid)
    assert.are.equal(1, attempts)
  end)

  it("rejects unknown options", function()
    local ok, err = pcall(policy.retry.call, function() end, { atempts = 3 })
    assert.is_false(ok)
    assert.matches("did you mean 'attempts'", err.message, 1, true)
  end)
end)

describe("the retention simulator", function()
  local dir, api, repo

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir, { env = { TZ = "UTC" } })
    repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("decides as borg prune --dry-run does", function()
    local src = helpers.source_tree(dir)
    -- Archives spread over three years: several a day, some a week apart,
    -- a checkpoint in between, and a few in the same minute.
    local stamps = {
      "2024-01-01T10:00:00", "2024-06-15T08:00:00", "2024-12-31T23:59:59",
      "2025-01-01T00:00:01", "2025-03-03T12:00:00", "2025-03-09T12:00:00",
      "2025-03-10T12:00:00", "2025-12-29T09:00:00", "2026-01-04T09:00:00",
      "2026-11-30T01:00:00", "2026-11-30T13:00:00", "2026-12-01T01:00:00",
      "2026-12-01T01:00:30", "2026-12-01T01:00:40", "2026-12-02T06:00:00",
      "2026-12-03T06:00:00",
    }
    for i, stamp in ipairs(stamps) do
      api.create { string.format("%s::a%02d", repo, i), src, timestamp = stamp }
    end
    api.create { repo .. "::old.checkpoint", src, timestamp = "2025-06-01T00:00:00" }
    local archives = api.list { repo, json = true, consider_checkpoints = true }.archives
    local rule_sets = {
      { keep_daily = 3 },
      { keep_daily = 2, keep_weekly = 2, keep_monthly = 3, keep_yearly = 5 },
      { keep_last = 4, keep_minutely = 2 },
      { keep_hourly = 30 },
      { keep_weekly = 52 },
      { keep_monthly = 1, keep_secondly = 2 },
    }
    for _, rules in ipairs(rule_sets) do
      local args = { repo, dry_run = true, list = true }
      for k, v in pairs(rules) do
        args[k] = v
      end
      local expected = {}
      for _, d in ipairs(api.prune(args)) do
        expected[d.archive] = d.action == "keep" and (d.rule .. "#" .. d.rule_number) or "prune"
      end
      local simulated = {}
      for _, d in ipairs(retention.simulate(archives, rules)) do
        simulated[d.archive] = d.action == "keep" and
          (d.rule .. (d.rule_number and ("#" .. d.rule_number) or "")) or "prune"
      end
      -- borg prints no number for a kept checkpoint.
      for name, v in pairs(expected) do
        if v:find("^checkpoint") then
          expected[name] = "checkpoint"
        end
      end
      assert.are.same(expected, simulated)
    end
  end)

  it("keeps what keep_within covers", function()
    local now = os.time { year = 2026, month = 12, day = 3, hour = 12 }
    local archives = {
      { name = "new", time = "2026-12-03T06:00:00.000000" },
      { name = "mid", time = "2026-12-02T00:00:00.000000" },
      { name = "old", time = "2026-11-01T00:00:00.000000" },
    }
    local decisions = retention.simulate(archives, { keep_within = "2d" }, { now = now })
    assert.are.same({ "keep", "keep", "prune" },
      { decisions[1].action, decisions[2].action, decisions[3].action })
    assert.are.equal("within", decisions[1].rule)
  end)

  it("rejects unknown or malformed rules", function()
    assert.has_error(function() retention.simulate({}, { keep_dayly = 3 }) end)
    assert.has_error(function() retention.simulate({}, { keep_within = "2x" }) end)
    assert.has_error(function() retention.simulate({}, { keep_daily = 1.5 }) end)
    assert.has_error(function() retention.simulate({}, {}) end)
  end)
end)

describe("the spot check", function()
  local dir, api, repo, src

  before_each(function()
    dir = helpers.tmpdir()
    api = helpers.instance(dir)
    repo = dir .. "/repo"
    src = helpers.source_tree(dir)
    api.init { repo, encryption = "none" }
    api.create { repo .. "::one", src }
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("finds every file of a fresh archive equal to its source", function()
    local r = policy.spotcheck.run { repo, count = 10, instance = api }
    assert.is_true(r.ok)
    assert.are.equal("one", r.archive)
    assert.are.equal(3, #r.checked)
    for _, entry in ipairs(r.checked) do
      assert.are.equal(sys.sha256_file("/" .. entry.path), entry.sha256)
    end
  end)

  it("reports a file that differs from its source", function()
    helpers.write(src .. "/a.txt", "changed after the backup\n")
    local r = policy.spotcheck.run { repo .. "::one", count = 3, instance = api, seed = 7 }
    assert.is_false(r.ok)
    assert.are.equal(1, #r.mismatches)
    assert.matches("/src/a%.txt$", r.mismatches[1].path)
    assert.matches("differs", r.mismatches[1].reason)
    -- The same seed picks the same files.
    local again = policy.spotcheck.run { repo .. "::one", count = 1, instance = api, seed = 7 }
    local third = policy.spotcheck.run { repo .. "::one", count = 1, instance = api, seed = 7 }
    assert.are.equal(again.checked[1].path, third.checked[1].path)
  end)
end)

describe("a remote repository through ssh", function()
  local dir, api, src

  before_each(function()
    dir = helpers.tmpdir()
    src = helpers.source_tree(dir)
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  local function remote(extra)
    local env = { BORG_RSH = helpers.top .. "/tests/bin/fake-ssh" }
    for k, v in pairs(extra or {}) do
      env[k] = v
    end
    return helpers.instance(dir, { env = env })
  end

  it("runs a whole policy: init, create, prune, compact, check, spot check", function()
    api = remote()
    local repo = "ssh://backup@example.invalid" .. dir .. "/remote"
    local summary = policy.run({ name = "remote", textfile = dir .. "/r.prom" }, function(p)
      p:step("init", function() api.init { repo, encryption = "none" } end)
      for i = 1, 2 do
        p:step("backup " .. i, { series = "src" }, function()
          return api.create { repo .. "::src-" .. i, src, json = true }
        end)
      end
      p:step("prune", function() return api.prune { repo, keep_last = 1, list = true } end)
      p:step("compact", function() api.compact { repo } end)
      p:step("check", function() api.check { repo } end)
      p:step("spot check", function()
        local r = policy.spotcheck.run { repo, count = 2, instance = api }
        assert(r.ok and #r.checked == 2, "spot check failed")
      end)
    end)
    assert.are.equal("ok", summary.status)
    assert.are.equal(repo, summary.backups[1].repository)
    local names = {}
    for _, a in ipairs(api.list { repo, json = true }.archives) do
      names[#names + 1] = a.name
    end
    assert.are.same({ "src-2" }, names)
  end)

  it("leaves a delete pending on an append-only server", function()
    api = remote()
    local repo = "ssh://backup@example.invalid" .. dir .. "/remote"
    api.init { repo, encryption = "none" }
    api.create { repo .. "::a", src }
    api.create { repo .. "::b", src }
    local function segments()
      return helpers.shell("cd " .. quote(dir .. "/remote/data") .. " && find . -type f | sort")
    end
    local before = segments()
    local forced = remote { FAKE_SSH_FORCED = "borg serve --append-only" }
    forced.delete { repo .. "::a" }
    forced.compact { repo }
    -- The client sees the archive gone, but the server only appended: every
    -- segment file is still there, so an administrator can roll it back.
    local names = {}
    for _, a in ipairs(forced.list { repo, json = true }.archives) do
      names[#names + 1] = a.name
    end
    assert.are.same({ "b" }, names)
    local after = segments()
    for file in before:gmatch("[^\n]+") do
      assert.is_truthy(after:find(file, 1, true), file .. " was removed")
    end
  end)

  it("names the restriction when a path is outside --restrict-to-path", function()
    api = remote()
    local repo = "ssh://backup@example.invalid" .. dir .. "/remote"
    api.init { repo, encryption = "none" }
    local forced = remote { FAKE_SSH_FORCED = "borg serve --restrict-to-path "
      .. quote(dir .. "/elsewhere") }
    local ok, err = pcall(forced.list, { repo })
    assert.is_false(ok)
    assert.are.equal("borg", err.kind)
    assert.matches("path not allowed", err.message)
    assert.matches(dir .. "/remote", err.message, 1, true)
  end)
end)

describe("the example policies", function()
  local dir

  before_each(function()
    dir = helpers.tmpdir()
  end)

  after_each(function()
    helpers.rmdir(dir)
  end)

  it("back up a laptop to a USB and a remote repository, twice", function()
    local home = helpers.source_tree(dir)
    local settings = {
      LAPTOP_HOME = home, LAPTOP_USB = dir .. "/usb",
      LAPTOP_OFFSITE = "ssh://backup@example.invalid" .. dir .. "/offsite",
      LAPTOP_STATE = dir .. "/state", BORG_PASSPHRASE = "laptop secret",
      BORG_RSH = helpers.top .. "/tests/bin/fake-ssh",
    }
    local script = quote(helpers.top .. "/scripts/laptop.lua")
    local out, err, status = borglua(dir, script, settings)
    assert.are.equal(0, status, err)
    assert.matches("usb +home%-%S+: 3 files", out)
    assert.matches("offsite +home%-%S+: 3 files", out)
    assert.matches("laptop: ok in", out, 1, true)
    local first = json.decode(helpers.read(dir .. "/state/laptop.status.json"))
    local names = {}
    for _, step in ipairs(first.steps) do
      names[#names + 1] = step.name .. "=" .. step.status
    end
    assert.are.same({ "backup usb=ok", "check usb=ok", "backup offsite=ok",
                      "check offsite=ok", "spot check offsite=ok" }, names)
    -- The second run makes new archives; the checks are not due yet.
    sys.sleep(1.1)
    out, err, status = borglua(dir, script, settings)
    assert.are.equal(0, status, err)
    local second = json.decode(helpers.read(dir .. "/state/laptop.status.json"))
    assert.are.equal("skipped", second.steps[2].status)
    assert.are.equal("skipped", second.steps[4].status)
    -- Plan mode shows the commands with the passphrase masked.
    out, err, status = borglua(dir, "--plan " .. script, settings)
    assert.are.equal(0, status, err)
    assert.matches("borg create ", out, 1, true)
    assert.is_nil(out:find("laptop secret", 1, true))
  end)

  it("stream a database dump into a server's repository", function()
    local etc = helpers.source_tree(dir)
    local settings = {
      SERVER_REPO = dir .. "/repo", SERVER_DUMP = "seq 1 300000",
      SERVER_PATHS = etc, SERVER_STATE = dir,
      SERVER_TEXTFILE = dir .. "/borglua.prom", BORG_PASSPHRASE = "server secret",
    }
    local out, err, status = borglua(dir, quote(helpers.top .. "/scripts/server.lua"),
      settings)
    assert.are.equal(0, status, err)
    assert.matches("server: ok in", out, 1, true)
    local metrics = parse_exposition(helpers.read(dir .. "/borglua.prom"))
    local series = {}
    for _, sample in ipairs(metrics.borglua_backup_original_size_bytes.samples) do
      series[sample.labels.series] = sample.value
    end
    -- borg counts the archive's own metadata in its original size too.
    local expected = #helpers.shell("seq 1 300000")
    assert.is_true(series.db >= expected and series.db < expected + 65536, series.db)
    assert.is_true(series.files > 6000)
    -- The dump in the archive is exactly what the command wrote.
    local api = helpers.instance(dir, { env = { BORG_PASSPHRASE = "server secret" } })
    local archives = api.list { dir .. "/repo", json = true, glob_archives = "db-*" }.archives
    assert.are.equal(1, #archives)
    local bytes = api.extract { dir .. "/repo::" .. archives[1].name, "dump.sql",
                                stdout = true }
    assert.are.equal(sys.sha256(helpers.shell("seq 1 300000")), sys.sha256(bytes))
  end)
end)
