-- The policy runner: named steps with hooks and retries, a run lock,
-- state kept between runs, and reports written at the end.
--
--   local borg = require "borg"
--   local policy = require "borg.policy"
--   policy.run({ name = "laptop", lock = "/run/lock/borglua-laptop",
--                state = "/var/lib/borglua/laptop.json",
--                report = "/var/lib/borglua/laptop.status.json",
--                textfile = "/var/lib/node_exporter/borglua-laptop.prom" },
--     function(p)
--       p:step("backup home", { series = "home" }, function()
--         return borg.create{ repo .. "::home-{now}", "/home", json = true }
--       end)
--       p:every("check", 7, function() borg.check{ repo } end)
--     end)
--
-- policy.run takes the lock and runs the body. Whatever happens, it then
-- writes the reports, saves the state and releases the lock. It returns
-- the summary, or raises the body's error. A step with keep_going = true
-- lets the policy go on after it fails; the run still ends with an error
-- (kind "policy") that lists the failed steps. Every borg call made during
-- a step is recorded in that step (command, repository, rc, duration),
-- and the figures of each `create` feed the reports.
--
-- The helpers it composes are modules of their own: borg.state,
-- borg.report, borg.retry, borg.retention, borg.spotcheck.

local call = require "borg.call"
local core = require "borg.core"
local errors = require "borg.errors"
local report = require "borg.report"
local retry = require "borg.retry"
local state = require "borg.state"
local sys = require "borg.sys"

local policy = {}

policy.retry = retry
policy.state = state
policy.report = report
policy.retention = require "borg.retention"
policy.spotcheck = require "borg.spotcheck"

local CONFIG_KEYS = { "after", "before", "lock", "lock_wait", "name",
                      "on_error", "report", "state", "textfile" }
local STEP_KEYS = { "after", "before", "keep_going", "on_error", "repository",
                    "retry", "series" }

local function usage(fmt, ...)
  errors.usage("policy", fmt, ...)
end

local function check_keys(where, table_, keys)
  for key in pairs(table_) do
    local known = false
    for _, name in ipairs(keys) do
      known = known or name == key
    end
    if not known then
      local guess = errors.nearest(tostring(key), keys)
      usage("unknown %s '%s'%s", where, tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or
        " (known: " .. table.concat(keys, ", ") .. ")")
    end
  end
end

local function check_hooks(where, t)
  for _, key in ipairs { "before", "after", "on_error" } do
    if t[key] ~= nil and type(t[key]) ~= "function" then
      usage("%s '%s' must be a function, got %s", where, key,
        errors.describe(t[key]))
    end
  end
end

local function check_config(config)
  if type(config) ~= "table" then
    usage("policy.run needs a table of settings, got %s", errors.describe(config))
  end
  check_keys("setting", config, CONFIG_KEYS)
  check_hooks("setting", config)
  for _, key in ipairs { "name", "lock", "state", "report", "textfile" } do
    if config[key] ~= nil and (type(config[key]) ~= "string" or config[key] == "") then
      usage("setting '%s' must be a non-empty string, got %s", key,
        errors.describe(config[key]))
    end
  end
  if config.lock_wait ~= nil and (type(config.lock_wait) ~= "number"
                                  or config.lock_wait < 0) then
    usage("setting 'lock_wait' must be a number of seconds, got %s",
      errors.describe(config.lock_wait))
  end
end

-- Print one line of the runner on stderr.
local function say(p, fmt, ...)
  io.stderr:write(string.format("borglua policy %s: " .. fmt .. "\n", p.name, ...))
end

-- The message of any error value, in one line.
local function message_of(err)
  if errors.is(err) then
    return tostring(err)
  end
  return tostring(err)
end

-- Take the run lock of p, waiting up to lock_wait seconds. Raises an
-- error of kind "busy" when the lock is still taken by another run.
local function take_lock(p, path, wait)
  local deadline = core.now() + (wait or 0)
  while true do
    local lock, before, holder = sys.lock(path)
    if lock then
      local pid = math.tointeger(tonumber((before or ""):match("^%s*(%d+)")))
      if pid and pid ~= sys.getpid() and not sys.alive(pid) then
        say(p, "took over the lock %s left by pid %d, which is no longer running",
          path, pid)
      end
      return lock
    end
    if before ~= "busy" then
      error(errors.new { kind = "usage", command = "policy",
        message = string.format("policy %s: %s", p.name, holder or before) }, 0)
    end
    if core.now() >= deadline then
      local pid = (holder or ""):match("^%s*(%d+)")
      error(errors.new { kind = "busy", command = "policy",
        message = string.format("policy %s: another run%s holds the lock %s;"
          .. " this run did not start%s", p.name,
          pid and (" (pid " .. pid .. ")") or "", path,
          (wait or 0) > 0 and string.format(" after waiting %g s", wait) or "") }, 0)
    end
    sys.sleep(math.min(0.2, math.max(0.01, deadline - core.now())))
  end
end

-- Run hook fn(...) of `owner` (the policy or a step); an error in it is
-- raised with the name of the hook and its step.
local function run_hook(owner, which, fn, ...)
  if fn == nil then
    return
  end
  local ok, err = pcall(fn, ...)
  if not ok then
    error(errors.new { kind = "hook", command = "policy", step = owner,
      hook = which, cause = err,
      message = string.format("%s hook of %s failed: %s", which,
        owner and ("step '" .. owner .. "'") or "the policy", message_of(err)) }, 0)
  end
end

-- Return the series of an archive name: the name without a trailing
-- date and time, as written by {now} or {utcnow}.
local function series_of(name)
  local series = name:gsub("[-_.]?%d%d%d%d%-%d%d%-%d%d[T_ ]?[%d:.%-]*$", "")
  return series ~= "" and series or name
end

-- Return the create figures of a call event, or nil.
local function figures_of(event)
  local result = event.result
  if type(result) ~= "table" then
    return nil
  end
  local doc = result.archive and result or result.stats
  local archive = type(doc) == "table" and doc.archive
  if type(archive) ~= "table" then
    return nil
  end
  local stats = archive.stats or {}
  return {
    archive = archive.name,
    files = stats.nfiles,
    original_size = stats.original_size,
    compressed_size = stats.compressed_size,
    deduplicated_size = stats.deduplicated_size,
    duration = archive.duration,
    repository = event.repository or (doc.repository and doc.repository.location),
  }
end

local Policy = {}
Policy.__index = Policy

local function record_call(p, event)
  local step = p.current or p.outside
  local entry = {
    command = event.command, repository = event.repository, ok = event.ok,
    rc = event.run and event.run.rc or (event.error and event.error.rc),
    status = event.ok and (event.run and event.run.status) or "failed",
    duration = event.duration,
    error = event.error and message_of(event.error) or nil,
    msgid = errors.is(event.error) and event.error.msgid or nil,
  }
  step.calls[#step.calls + 1] = entry
  if entry.status == "warning" then
    p.warned = true
  end
  if event.command == "create" then
    local figures = event.ok and figures_of(event)
    local series = step.series or (figures and figures.archive and
                                   series_of(figures.archive)) or step.name
    local repository = step.repository or event.repository or
                       (figures and figures.repository) or ""
    local backup = { repository = repository, series = series }
    for key, value in pairs(figures or {}) do
      if key ~= "repository" then
        backup[key] = value
      end
    end
    backup.ok = event.ok
    p.backups[#p.backups + 1] = backup
  end
end

local function new_step(name, opts)
  return { name = name, status = "running", calls = {}, series = opts.series,
           repository = opts.repository }
end

-- Run fn as the step `name`. opts (optional): repository and series (for
-- the reports), retry (a number of attempts or borg.retry options),
-- before/after/on_error hooks, keep_going (record a failure and return
-- nil, err instead of raising it). Returns fn's results.
function Policy:step(name, opts, fn)
  if type(opts) == "function" and fn == nil then
    opts, fn = {}, opts
  end
  if type(name) ~= "string" or name == "" then
    usage("a step needs a name, got %s", errors.describe(name))
  end
  if type(opts) ~= "table" then
    usage("step '%s': options must be a table, got %s", name, errors.describe(opts))
  end
  if type(fn) ~= "function" then
    usage("step '%s' needs a function to run, got %s", name, errors.describe(fn))
  end
  check_keys("step option", opts, STEP_KEYS)
  check_hooks("step option", opts)
  if self.current then
    usage("step '%s' started inside step '%s'; steps do not nest", name,
      self.current.name)
  end
  local step = new_step(name, opts)
  self.steps[#self.steps + 1] = step
  self.current = step
  local started = core.now()
  step.started = os.time()
  local retry_options = opts.retry
  if type(retry_options) == "number" then
    retry_options = { attempts = retry_options }
  end
  local results = table.pack(pcall(function()
    run_hook(name, "before", opts.before, self, step)
    local r
    if retry_options then
      r = table.pack(retry.call(fn, retry_options, self, step))
    else
      r = table.pack(fn(self, step))
    end
    run_hook(name, "after", opts.after, self, step)
    return r
  end))
  self.current = nil
  step.duration = core.now() - started
  if results[1] then
    local warned = false
    for _, c in ipairs(step.calls) do
      warned = warned or c.status == "warning"
    end
    step.status = warned and "warning" or "ok"
    local r = results[2]
    return table.unpack(r, 1, r.n)
  end
  local err = results[2]
  step.status = "failed"
  step.error = message_of(err)
  local hook_ok, hook_err = pcall(run_hook, name, "on_error", opts.on_error,
                                  self, step, err)
  if not hook_ok then
    step.error = step.error .. "; " .. message_of(hook_err)
  end
  if opts.keep_going then
    self.failed_steps = (self.failed_steps or 0) + 1
    say(self, "step '%s' failed, going on: %s", name, step.error)
    return nil, err
  end
  error(err, 0)
end

-- Run fn as step `name` when the state store reports it due: never done, or
-- last done at least `days` days ago. Records it as done when it
-- succeeds. Returns true and fn's results when it ran, false when not due.
function Policy:every(name, days, fn, opts)
  if self.store:due(name, days) then
    local r = table.pack(self:step(name, opts or {}, fn))
    if self.steps[#self.steps].status ~= "failed" then
      self.store:done(name)
    end
    return true, table.unpack(r, 1, r.n)
  end
  self.steps[#self.steps + 1] = { name = name, status = "skipped", calls = {},
                                  reason = string.format("not due (every %g days)", days) }
  return false
end

-- A store that keeps its data in memory, for a policy without a state file.
local function memory_store()
  local store = state.open("/dev/null")
  store.save = function() return true end
  return store
end

local function summarize(p, ok, err, finished)
  local status = "ok"
  if not ok or p.failed_steps then
    status = "failed"
  elseif p.warned then
    status = "warning"
  end
  -- The program's own exit status: 128+N after a signal (DESIGN 5).
  local interrupted = core.interrupted()
  local summary = {
    policy = p.name, started = p.started, finished = finished,
    duration = core.now() - p.clock, status = status,
    exit_status = interrupted and 128 + interrupted
      or status == "failed" and 2 or status == "warning" and 1 or 0,
    error = not ok and message_of(err) or nil,
    steps = {}, backups = {},
  }
  for _, step in ipairs(p.steps) do
    summary.steps[#summary.steps + 1] = step
  end
  if #p.outside.calls > 0 then
    summary.steps[#summary.steps + 1] = p.outside
    p.outside.status = "ok"
  end
  -- The newest backup of each series, with its last success from the state.
  local seen = {}
  for i = #p.backups, 1, -1 do
    local backup = p.backups[i]
    local key = "series:" .. backup.repository .. "|" .. backup.series
    if not seen[key] then
      seen[key] = true
      if backup.ok and not p.planning then
        p.store:success(key, finished)
      end
      backup.last_success = p.store:last_success(key)
      table.insert(summary.backups, 1, backup)
    end
  end
  if status ~= "failed" and not p.planning then
    p.store:success("policy", finished)
  end
  summary.last_success = p.store:last_success("policy")
  return summary
end

-- Write the reports and save the state; return the messages of what failed.
local function finish(p, config, summary)
  local problems = {}
  local function attempt(fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then
      problems[#problems + 1] = message_of(err)
    end
  end
  if config.state then
    attempt(p.store.save, p.store)
  end
  if config.report then
    attempt(report.write_json, config.report, summary)
  end
  if config.textfile then
    attempt(report.write_prometheus, config.textfile, summary)
  end
  return problems
end

-- Run body(p) as the policy described by config (see the top of this
-- file). Return its summary, or raise the body's error once the reports
-- are written. In plan mode (borglua --plan) nothing is locked or written.
function policy.run(config, body)
  check_config(config)
  if type(body) ~= "function" then
    usage("policy.run needs the policy's function as its second argument, got %s",
      errors.describe(body))
  end
  local borg = require "borg"
  local p = setmetatable({
    name = config.name or "policy", steps = {}, backups = {},
    outside = { name = "(outside steps)", calls = {} },
    started = os.time(), clock = core.now(), planning = borg.planning,
  }, Policy)
  p.store = config.state and not p.planning and state.open(config.state)
            or memory_store()
  if p.planning then
    if config.lock then
      io.stdout:write("# policy ", p.name, ": would take the lock ", config.lock, "\n")
    end
  end
  local lock = config.lock and not p.planning and
               take_lock(p, config.lock, config.lock_wait)
  local stop_observing = call.observe(function(event)
    record_call(p, event)
  end)
  local ok, err = pcall(function()
    run_hook(nil, "before", config.before, p)
    body(p)
  end)
  stop_observing()
  if not ok then
    local hook_ok, hook_err = pcall(run_hook, nil, "on_error", config.on_error, p, err)
    if not hook_ok then
      say(p, "%s", message_of(hook_err))
    end
  end
  local summary = summarize(p, ok, err, os.time())
  local after_ok, after_err = pcall(run_hook, nil, "after", config.after, p, summary)
  if not after_ok then
    say(p, "%s", message_of(after_err))
    if ok then
      ok, err = false, after_err
      summary.status = "failed"
      summary.exit_status = core.interrupted() and summary.exit_status or 2
      summary.error = message_of(after_err)
    end
  end
  local problems = p.planning and {} or finish(p, config, summary)
  if lock then
    lock:unlock()
  end
  for _, problem in ipairs(problems) do
    say(p, "%s", problem)
  end
  if not ok then
    error(err, 0)
  end
  if p.failed_steps then
    local failed = {}
    for _, step in ipairs(p.steps) do
      if step.status == "failed" then
        failed[#failed + 1] = string.format("step '%s': %s", step.name, step.error)
      end
    end
    error(errors.new { kind = "policy", command = "policy", steps = failed,
      message = string.format("policy %s: %d of %d steps failed: %s", p.name,
        #failed, #p.steps, table.concat(failed, "; ")) }, 0)
  end
  if #problems > 0 then
    error(errors.new { kind = "report", command = "policy",
      message = "the policy ran, but " .. table.concat(problems, "; ") }, 0)
  end
  return summary
end

return policy
