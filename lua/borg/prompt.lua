-- borg's yes/no questions: the answers a child gets, the on_prompt
-- callback, and the error for a question that was answered "no".
--
-- borg 1.2 asks four yes/no questions. Each reads its answer from an
-- environment variable when that is set, and otherwise from stdin:
--
--   BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK  unknown unencrypted repository
--   BORG_RELOCATED_REPO_ACCESS_IS_OK           repository that has moved
--   BORG_CHECK_I_KNOW_WHAT_I_AM_DOING          check --repair (only YES counts)
--   BORG_DELETE_I_KNOW_WHAT_I_AM_DOING         delete of a whole repository (YES)
--
-- Under --log-json each question arrives as a question_prompt record whose
-- msgid is the variable's name; a "no" adds question_accepted_false.

local errors = require "borg.errors"

local prompt = {}

prompt.VARIABLES = {
  "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING",
  "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING",
  "BORG_RELOCATED_REPO_ACCESS_IS_OK",
  "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK",
}
local IS_VARIABLE = {}
for _, name in ipairs(prompt.VARIABLES) do
  IS_VARIABLE[name] = true
end

local ACCESS = { "BORG_RELOCATED_REPO_ACCESS_IS_OK",
                 "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK" }

-- The variables that confirm = true sets to YES: those of the questions
-- that command can ask.
local function confirmed_variables(command)
  if command == "check" then
    return { "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING" }
  elseif command == "delete" then
    return { "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING", table.unpack(ACCESS) }
  end
  return ACCESS
end

-- Check the run options confirm and on_prompt. passphrase_stdin is true
-- when the passphrases of the call go to borg's stdin.
function prompt.check(command, run, passphrase_stdin)
  if run.confirm ~= nil and type(run.confirm) ~= "boolean" then
    errors.usage(command, "run option 'confirm' must be true or false, got %s",
      errors.describe(run.confirm))
  end
  if run.on_prompt and (passphrase_stdin or run.stdin ~= nil) then
    errors.usage(command, "run option 'on_prompt' cannot be combined with %s,"
      .. " because borg reads the answers from the same stdin",
      passphrase_stdin and "the passphrases that " .. command .. " sends on stdin"
        or "run option 'stdin'")
  end
end

-- Set the answer variables in vars (the child's environment) for a call:
-- with on_prompt none, so that borg asks; with confirm YES for the
-- command's questions; otherwise "no" for each one the caller left
-- unset. BORG_DISPLAY_PASSPHRASE (show a new passphrase) is "no" unless
-- set.
function prompt.set_answers(vars, command, run)
  if vars.BORG_DISPLAY_PASSPHRASE == nil then
    vars.BORG_DISPLAY_PASSPHRASE = "no"
  end
  if run.on_prompt then
    return
  end
  if run.confirm then
    for _, name in ipairs(confirmed_variables(command)) do
      vars[name] = "YES"
    end
  end
  for _, name in ipairs(prompt.VARIABLES) do
    if vars[name] == nil then
      vars[name] = "no"
    end
  end
end

-- Return the answer line for what on_prompt returned: true is YES (the
-- only answer every question accepts), false or nil is no.
local function answer_line(command, answer)
  if answer == true then
    return "YES"
  elseif answer == false or answer == nil then
    return "no"
  elseif type(answer) == "string" then
    return (answer:match("^[^\r\n]*"))
  end
  errors.usage(command, "on_prompt must return a string, true or false, got %s",
    errors.describe(answer))
end

-- Return true for the warning Python prints just before getpass reads a
-- passphrase from stdin (it has no terminal to turn echo off on).
local function is_getpass_warning(record)
  return record.type == "log_message"
    and tostring(record.message):find("GetPassWarning", 1, true) ~= nil
end

-- Wire the on_prompt callback of ctx.run into job (see process.run):
-- borg's stdin stays open, each question goes to the callback, and its
-- answer is written as a line. A passphrase prompt would read the same
-- stdin, so the host closes stdin when one starts: borg then fails with
-- NoPassphraseFailure instead of waiting.
function prompt.attach(job, ctx)
  local on_prompt = ctx.run.on_prompt
  ctx.answers = {}
  if on_prompt == nil then
    return
  end
  local proc
  job.keep_stdin = true
  job.on_spawn = function(spawned)
    proc = spawned
  end
  job.on_record = function(record)
    if record.type == "question_prompt" or record.type == "question_prompt_retry" then
      local line = answer_line(ctx.command, on_prompt(record.message, record.msgid))
      ctx.answers[#ctx.answers + 1] = { question = record.message,
                                        variable = record.msgid, answer = line }
      local note = { type = "log_message", levelname = "INFO", name = "borglua.prompt",
                     message = string.format("on_prompt answered %q to %s", line,
                       tostring(record.msgid)) }
      if job.on_log then
        job.on_log(note)
      elseif job.print_log and (ctx.log_level == "info" or ctx.log_level == "debug") then
        job.print_log(note)
      end
      proc:write(line .. "\n")
    elseif is_getpass_warning(record) then
      proc:close_stdin()
    end
  end
end

-- Return the question text on one line: borg's rulers dropped, runs of
-- space and line breaks made one space.
local function one_line(question)
  local parts = {}
  for line in tostring(question):gmatch("[^\n]+") do
    if not line:find("^%-+%s*$") then
      parts[#parts + 1] = line
    end
  end
  return (table.concat(parts, " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- Return the question that borg put and then saw answered with no (or
-- an invalid answer), as { variable, question, env_answer }, or nil.
local function declined_question(questions)
  local seen, env_answer = {}, {}
  for _, record in ipairs(questions) do
    local variable = record.msgid
    if record.type == "question_prompt" and IS_VARIABLE[variable] then
      seen[variable] = record.message
    elseif record.type == "question_env_answer" then
      env_answer[variable] = record.message
    elseif (record.type == "question_accepted_false"
            or record.type == "question_invalid_answer") and seen[variable] then
      return { variable = variable, question = seen[variable],
               env_answer = env_answer[variable] }
    end
  end
  return nil
end

-- Return the fields of a "prompt" error for a failed outcome, or nil when
-- the failure was not about a question or a missing passphrase.
function prompt.failure(outcome, ctx, msgid)
  local declined = declined_question(outcome.questions or {})
  if declined then
    local variable = declined.variable
    local answer_text
    if ctx.run.on_prompt then
      answer_text = "on_prompt answered no"
    elseif declined.env_answer then
      answer_text = "the answer was " .. declined.env_answer
    else
      answer_text = "nobody answered"
    end
    return {
      kind = "prompt", msgid = msgid or variable, variable = variable,
      question = declined.question,
      message = string.format("borg asked \"%s\" and %s; to allow it, pass"
        .. " confirm = true in the run table (sets %s=YES for this call only)"
        .. " or answer with on_prompt", one_line(declined.question), answer_text, variable),
    }
  end
  if msgid == "NoPassphraseFailure" then
    local message = "borg needs a passphrase and none was given (a child has no"
      .. " terminal to ask on): set the instance's 'passphrase', or"
      .. " BORG_PASSPHRASE or BORG_PASSCOMMAND in its env"
    if ctx.command == "key_change_passphrase" and not ctx.new_passphrase then
      message = "borg needs the new passphrase: set BORG_NEW_PASSPHRASE in the"
        .. " call's env (the current one comes from 'passphrase',"
        .. " BORG_PASSPHRASE or BORG_PASSCOMMAND)"
    end
    return { kind = "prompt", msgid = msgid, message = message }
  end
  return nil
end

return prompt
