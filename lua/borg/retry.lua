-- Retries for transient borg failures.
--
--   local retry = require "borg.retry"
--   local stats = retry.call(function()
--     return borg.create{ repo .. "::{now}", "/etc", json = true }
--   end, { attempts = 4, delay = 10 })
--
-- fn runs again only when borg.retryable(err) calls its error transient,
-- as a repository lock held by another process or a lost connection to
-- a remote repository. Any other error is raised at once.
-- The pauses grow by `backoff` each time, up to `max_delay` seconds.

local errors = require "borg.errors"
local sys = require "borg.sys"

local retry = {}

local DEFAULTS = { attempts = 3, delay = 5, backoff = 2, max_delay = 300 }

local function usage(fmt, ...)
  errors.usage("retry", fmt, ...)
end

local function check(options)
  if options == nil then
    options = {}
  elseif type(options) ~= "table" then
    usage("retry options must be a table, got %s", errors.describe(options))
  end
  local checked = {}
  for key, value in pairs(options) do
    if DEFAULTS[key] ~= nil then
      if type(value) ~= "number" or value < 0 or value ~= value then
        usage("retry option '%s' must be a number of at least 0, got %s", key,
          errors.describe(value))
      end
    elseif key == "retryable" or key == "on_retry" then
      if type(value) ~= "function" then
        usage("retry option '%s' must be a function, got %s", key,
          errors.describe(value))
      end
    else
      local guess = errors.nearest(tostring(key),
        { "attempts", "delay", "backoff", "max_delay", "retryable", "on_retry" })
      usage("unknown retry option '%s'%s", tostring(key),
        guess and string.format(" (did you mean '%s'?)", guess) or "")
    end
    checked[key] = value
  end
  for key, value in pairs(DEFAULTS) do
    if checked[key] == nil then
      checked[key] = value
    end
  end
  if math.type(checked.attempts) ~= "integer" and
      checked.attempts ~= math.floor(checked.attempts) or checked.attempts < 1 then
    usage("retry option 'attempts' must be a whole number of at least 1, got %s",
      errors.describe(options.attempts))
  end
  checked.retryable = checked.retryable or rawget(require "borg", "retryable")
  return checked
end

-- Call fn(...) until it returns, at most options.attempts times; return
-- its results. Raises its last error, or at once an error that is not
-- transient.
function retry.call(fn, options, ...)
  if type(fn) ~= "function" then
    usage("retry.call needs a function, got %s", errors.describe(fn))
  end
  options = check(options)
  local wait = options.delay
  for attempt = 1, options.attempts do
    local results = table.pack(pcall(fn, ...))
    if results[1] then
      return table.unpack(results, 2, results.n)
    end
    local err = results[2]
    if attempt == options.attempts or not options.retryable(err) then
      error(err, 0)
    end
    if options.on_retry then
      options.on_retry(err, attempt, wait)
    else
      io.stderr:write(string.format("borglua: %s; attempt %d of %d failed, trying"
        .. " again in %g s\n", tostring(err), attempt, options.attempts, wait))
    end
    sys.sleep(wait)
    wait = math.min(wait * options.backoff, options.max_delay)
  end
end

return retry
