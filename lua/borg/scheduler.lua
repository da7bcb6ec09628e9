-- Running Lua functions side by side on the host's one event loop:
-- borg.parallel.
--
-- Each function runs as a coroutine (a task). A borg call inside a task
-- yields while its process has nothing to report, so the other tasks go
-- on. When no task can go on, the scheduler runs the event loop once
-- (core.step), which waits until some process has written or exited.
-- Calls on one repository take turns: a call waits while another task's
-- call on that repository runs, instead of failing on borg's lock.
--
-- borg.parallel raises a "usage" error when it is called wrongly. An
-- error inside a function does not stop the others: it becomes that
-- function's entry in the results.

local core = require "borg.core"
local errors = require "borg.errors"

local scheduler = {}

-- The task of each coroutine that borg.parallel runs. A coroutine that a
-- function creates itself is not a task, and borg calls inside it block.
local tasks = setmetatable({}, { __mode = "k" })

-- Repository keys (see borg.location) that a call holds: key -> entry
-- { task = the task that took it, count = how many of its calls hold it }.
local holders = {}

-- Values a task yields to the scheduler: it waits for the event loop, or
-- for a repository that another task holds.
local WAIT_EVENTS, WAIT_REPOSITORY = {}, {}

local OPTION_NAMES = { "limit" }

-- Return the task that is running, or nil outside borg.parallel and
-- where the task cannot yield (inside a C function such as table.sort).
local function current_task()
  local co, main = coroutine.running()
  if main or not coroutine.isyieldable() then
    return nil
  end
  return tasks[co]
end

-- Return true inside a function that borg.parallel runs.
function scheduler.in_task()
  return current_task() ~= nil
end

-- Read the next event of proc (see proc:read in the core). Inside
-- borg.parallel the task yields until there is one; elsewhere the event
-- loop runs here until there is one.
function scheduler.read(proc)
  if current_task() == nil then
    return proc:read(true)
  end
  while true do
    local kind, data, extra, timed_out = proc:read(false)
    if kind ~= nil then
      return kind, data, extra, timed_out
    end
    coroutine.yield(WAIT_EVENTS)
  end
end

-- Wait until the event loop has handled something: inside borg.parallel
-- by yielding to the scheduler, elsewhere by running the loop once. For
-- code that waits on the core by other means than proc:read (such as
-- the stdin of a process draining).
function scheduler.wait()
  if current_task() == nil then
    core.step()
  else
    coroutine.yield(WAIT_EVENTS)
  end
end

-- Return true when task or one of the tasks that started it (through a
-- borg.parallel inside a function) holds entry. A call then goes ahead,
-- as it would in a script without borg.parallel.
local function owns(task, entry)
  while task do
    if entry.task == task then
      return true
    end
    task = task.parent
  end
  return false
end

local Hold = {}
Hold.__index = Hold

-- Release the repository, once.
function Hold.__close(hold)
  local entry = hold.entry
  if entry == nil then
    return
  end
  hold.entry = nil
  hold.task.holds[hold] = nil
  entry.count = entry.count - 1
  if entry.count == 0 and holders[hold.key] == entry then
    holders[hold.key] = nil
  end
end

-- Make fn run when the task that took the hold ends while still holding
-- it, as when a borg.iter loop is left before its end: fn stops what
-- uses the repository, and the hold is released after it.
function Hold:on_abandon(fn)
  if self.entry then
    self.abandon = fn
  end
end

-- A hold that releases nothing, for calls outside borg.parallel.
local NO_HOLD = setmetatable({}, Hold)

-- Take repository key for the running task, waiting while another task
-- holds it, and return a value to close (a `local h <close>`) that
-- releases it. Outside borg.parallel, or with no key (nil or false), it
-- takes nothing.
-- Raises a "usage" error when tasks wait for each other's repositories.
function scheduler.hold(key)
  local task = current_task()
  if not key or task == nil then
    return NO_HOLD
  end
  while holders[key] and not owns(task, holders[key]) do
    task.waiting_for = key
    coroutine.yield(WAIT_REPOSITORY)
    task.waiting_for = nil
    if task.deadlock then
      task.deadlock = nil
      errors.usage("parallel", "two functions wait for each other's repository"
        .. " (%s): a callback that calls borg on another repository while its"
        .. " own call runs can do this; make such calls after the first one ends",
        key)
    end
  end
  local entry = holders[key]
  if entry then
    entry.count = entry.count + 1
  else
    entry = { task = task, count = 1 }
    holders[key] = entry
  end
  local hold = setmetatable({ key = key, entry = entry, task = task }, Hold)
  task.holds[hold] = true
  return hold
end

-- Release the holds that task still has once it ended: otherwise its
-- repositories would stay taken for every later borg.parallel.
local function release_abandoned(task)
  for hold in pairs(task.holds) do
    if hold.abandon then
      hold.abandon()
    end
    Hold.__close(hold)
  end
end

-- Return the keys of functions in the order they start: the array part
-- first, then the other keys sorted by their text.
local function start_order(functions)
  local order, others = {}, {}
  for i = 1, #functions do
    order[i] = i
  end
  for key in pairs(functions) do
    if math.type(key) ~= "integer" or key < 1 or key > #functions then
      others[#others + 1] = key
    end
  end
  table.sort(others, function(a, b)
    return tostring(a) < tostring(b)
  end)
  table.move(others, 1, #others, #order + 1, order)
  return order
end

local function check_call(functions, options)
  if type(functions) ~= "table" then
    errors.usage("parallel", "expected a table of functions, got %s (call it as"
      .. " borg.parallel{ function() ... end, ... })", errors.describe(functions))
  end
  for key, fn in pairs(functions) do
    if type(fn) ~= "function" then
      errors.usage("parallel", "entry %s must be a function, got %s (wrap the"
        .. " call: function() return borg.create{ ... } end)", tostring(key),
        errors.describe(fn))
    end
  end
  if options == nil then
    return nil
  end
  if type(options) ~= "table" then
    errors.usage("parallel", "the second argument (options) must be a table,"
      .. " got %s", errors.describe(options))
  end
  for key in pairs(options) do
    if key ~= "limit" then
      local guess = type(key) == "string" and errors.nearest(key, OPTION_NAMES)
      errors.usage("parallel", "unknown option '%s'%s", tostring(key),
        guess and " (did you mean 'limit'?)" or " (known: limit)")
    end
  end
  local limit = options.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 1) then
    errors.usage("parallel", "option 'limit' must be a positive integer (how"
      .. " many functions run at once), got %s", errors.describe(limit))
  end
  return limit
end

-- Store the outcome of a task that ended: on success the values it
-- returned (as table.pack does) with ok = true, on failure ok = false
-- and the error value.
local function store(results, task, ok, ...)
  if ok then
    local entry = table.pack(...)
    entry.ok = true
    results[task.key] = entry
  else
    results[task.key] = { ok = false, error = (...) }
  end
end

-- Resume task once and record what it waits for next, or its outcome.
local function step_task(task, results)
  local outcome = table.pack(coroutine.resume(task.co, task.key))
  if coroutine.status(task.co) == "dead" then
    task.state = "done"
    if not outcome[1] then
      -- Run the to-be-closed variables the error left open: they release
      -- repositories and end borg processes.
      coroutine.close(task.co)
    end
    release_abandoned(task)
    store(results, task, table.unpack(outcome, 1, outcome.n))
    return
  end
  local signal = outcome[2]
  if signal == WAIT_EVENTS then
    task.state = "events"
  elseif signal == WAIT_REPOSITORY then
    task.state = "repository"
  else
    coroutine.close(task.co)
    release_abandoned(task)
    task.state = "done"
    store(results, task, false, errors.new {
      kind = "usage", command = "parallel",
      message = "a function of borg.parallel called coroutine.yield outside a"
        .. " coroutine of its own",
    })
  end
end

-- Make ready the tasks that wait for a repository that is now free.
local function wake_repository_waiters(running)
  for _, task in ipairs(running) do
    if task.state == "repository" then
      local entry = holders[task.waiting_for]
      if entry == nil or owns(task, entry) then
        task.state = "ready"
      end
    end
  end
end

-- Resume every ready task once; return true when there was one.
local function resume_ready(running, results)
  local any = false
  for _, task in ipairs(running) do
    if task.state == "ready" then
      any = true
      step_task(task, results)
    end
  end
  for i = #running, 1, -1 do
    if running[i].state == "done" then
      table.remove(running, i)
    end
  end
  return any
end

-- Wait until the event loop reports something, then make every task that
-- waited for it ready. Inside another borg.parallel the outer scheduler
-- runs the loop.
local function wait_for_events(running, parent)
  if parent then
    coroutine.yield(WAIT_EVENTS)
  else
    core.step()
  end
  for _, task in ipairs(running) do
    if task.state == "events" then
      task.state = "ready"
    end
  end
end

-- Handle a round in which no task could go on.
local function unblock(running, parent)
  for _, task in ipairs(running) do
    if task.state == "events" then
      wait_for_events(running, parent)
      return
    end
  end
  if parent then
    -- The repositories may be held by tasks of the outer scheduler.
    wait_for_events(running, parent)
    return
  end
  -- Every task waits for a repository that another waiting task holds.
  for _, task in ipairs(running) do
    if task.state == "repository" then
      task.deadlock = true
      task.state = "ready"
    end
  end
end

-- Close the coroutines of tasks that did not end, when borg.parallel
-- itself fails, so that their borg processes and repositories are
-- released.
local Group = {}
function Group.__close(group)
  for _, task in ipairs(group.running) do
    if task.state ~= "done" then
      coroutine.close(task.co)
      release_abandoned(task)
    end
  end
end

-- Run functions (a table of functions) side by side. Return the results,
-- for each key of functions a table with ok = true and the values that
-- the function returned (1..n, as table.pack) or ok = false and error,
-- and how many functions failed. options.limit bounds how many
-- functions run at once. Each function receives its key.
function scheduler.parallel(functions, options)
  local limit = check_call(functions, options)
  local order = start_order(functions)
  local parent = current_task()
  local results = {}
  local running = {}
  local group <close> = setmetatable({ running = running }, Group)
  local next_start = 1
  limit = limit or math.max(#order, 1)

  while next_start <= #order or #running > 0 do
    while #running < limit and next_start <= #order do
      local key = order[next_start]
      next_start = next_start + 1
      local task = { key = key, co = coroutine.create(functions[key]),
                     parent = parent, state = "ready", holds = {} }
      tasks[task.co] = task
      running[#running + 1] = task
    end
    wake_repository_waiters(running)
    if not resume_ready(running, results) and #running > 0 then
      unblock(running, parent)
    end
  end

  local failed = 0
  for _, entry in pairs(results) do
    if not entry.ok then
      failed = failed + 1
    end
  end
  return results, failed
end

return scheduler
