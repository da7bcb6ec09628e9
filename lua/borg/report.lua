-- Reports of a policy run: a JSON status file and a Prometheus textfile
-- (node_exporter's textfile collector format), each written atomically,
-- so a reader never sees half a file.
--
-- Both take the summary that borg.policy builds (see policy.lua):
--   { policy, started, finished, duration, status, exit_status, error,
--     steps = { { name, status, started, duration, error, calls = {...} } },
--     backups = { { repository, series, archive, files, original_size,
--                   compressed_size, deduplicated_size, duration,
--                   last_success } } }

local json = require "borg.json"
local sys = require "borg.sys"

local report = {}

-- Write text to path atomically; raise an error naming the report.
local function write(path, text, what)
  local ok, message = sys.write_file(path, text, tonumber("644", 8))
  if not ok then
    error(string.format("cannot write the %s: %s", what, message), 0)
  end
end

-- Write the summary as a JSON document to path.
function report.write_json(path, summary)
  write(path, json.encode(summary) .. "\n", "JSON status file")
end

-- Escape a label value as the exposition format wants it.
local function label_value(value)
  return (tostring(value):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"',
                                             ["\n"] = "\\n" }))
end

local function labels(pairs_list)
  local parts = {}
  for i = 1, #pairs_list, 2 do
    parts[#parts + 1] = pairs_list[i] .. '="' .. label_value(pairs_list[i + 1]) .. '"'
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function number(value)
  if math.type(value) == "integer" then
    return tostring(value)
  end
  if value ~= value then
    return "NaN"
  end
  return string.format("%.10g", value)
end

-- The metrics of a run: name, type, help, and how to read a sample.
local BACKUP_METRICS = {
  { "borglua_backup_last_success_timestamp_seconds", "gauge",
    "Time of the last successful backup of the series.", "last_success" },
  { "borglua_backup_duration_seconds", "gauge",
    "Duration of the series' latest backup.", "duration" },
  { "borglua_backup_files", "gauge",
    "Files in the series' latest archive.", "files" },
  { "borglua_backup_original_size_bytes", "gauge",
    "Original size of the series' latest archive.", "original_size" },
  { "borglua_backup_deduplicated_size_bytes", "gauge",
    "Deduplicated size of the series' latest archive.", "deduplicated_size" },
}

-- Return the summary as Prometheus exposition text.
function report.prometheus(summary)
  local out = {}
  local function metric(name, kind, help)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. kind
  end
  local policy = summary.policy or "policy"
  for _, m in ipairs(BACKUP_METRICS) do
    local samples = {}
    for _, backup in ipairs(summary.backups or {}) do
      local value = backup[m[4]]
      if type(value) == "number" then
        samples[#samples + 1] = m[1] .. labels { "policy", policy, "repository",
          backup.repository or "", "series", backup.series or "" } .. " " .. number(value)
      end
    end
    if #samples > 0 then
      metric(m[1], m[2], m[3])
      table.move(samples, 1, #samples, #out + 1, out)
    end
  end
  metric("borglua_step_success", "gauge", "1 when the step succeeded, 0 when it failed.")
  for _, step in ipairs(summary.steps or {}) do
    if step.status ~= "skipped" then
      out[#out + 1] = "borglua_step_success" .. labels { "policy", policy, "step",
        step.name } .. " " .. (step.status == "failed" and "0" or "1")
    end
  end
  local policy_label = labels { "policy", policy }
  metric("borglua_policy_exit_status", "gauge",
    "Exit status of the policy: 0 ok, 1 warnings, 2 failed.")
  out[#out + 1] = "borglua_policy_exit_status" .. policy_label .. " " ..
    number(summary.exit_status or 0)
  metric("borglua_policy_duration_seconds", "gauge", "Duration of the policy run.")
  out[#out + 1] = "borglua_policy_duration_seconds" .. policy_label .. " " ..
    number(summary.duration or 0)
  metric("borglua_policy_last_run_timestamp_seconds", "gauge",
    "Time the policy run ended.")
  out[#out + 1] = "borglua_policy_last_run_timestamp_seconds" .. policy_label ..
    " " .. number(summary.finished or os.time())
  if summary.last_success then
    metric("borglua_policy_last_success_timestamp_seconds", "gauge",
      "Time of the last policy run that did not fail.")
    out[#out + 1] = "borglua_policy_last_success_timestamp_seconds" ..
      policy_label .. " " .. number(summary.last_success)
  end
  return table.concat(out, "\n") .. "\n"
end

-- Write the summary as a Prometheus textfile to path.
function report.write_prometheus(path, summary)
  write(path, report.prometheus(summary), "Prometheus textfile")
end

return report
