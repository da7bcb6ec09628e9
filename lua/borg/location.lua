-- The repository that a borg call works on, reduced to one key per
-- repository.
--
-- Two calls on one repository must not run at once, because the second
-- fails on borg's lock. borg.parallel therefore needs to see that
-- differently written locations name the same repository: "repo",
-- "./repo/", "/abs/repo" and a symbolic link to it give one key, and so
-- do "host:repo" and "ssh://host:22/./repo".

local core = require "borg.core"

local location = {}

-- Split "repo::archive" into "repo" and "archive". The archive is nil
-- when text has no "::".
function location.split(text)
  local repository, archive = text:match("^(.-)::(.*)$")
  if repository == nil then
    return text, nil
  end
  return repository, archive
end

-- Return path with "." components, repeated slashes and a trailing slash
-- removed, and "dir/.." pairs folded. Symbolic links are not looked at.
local function clean_path(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part == ".." and absolute then
      -- "/.." is "/"
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local joined = table.concat(parts, "/")
  if absolute then
    return "/" .. joined
  end
  return joined == "" and "." or joined
end

-- Return the absolute path of a local repository with symbolic links
-- resolved. A repository that does not exist yet (before init) keeps the
-- missing part of its path as written below its nearest existing parent.
local function local_key(path, cwd)
  if path:sub(1, 1) ~= "/" then
    local base = cwd or "."
    path = (core.realpath(base) or base) .. "/" .. path
  end
  local cleaned = clean_path(path)
  local head, tail = cleaned, nil
  while true do
    local resolved = core.realpath(head)
    if resolved then
      if tail == nil then
        return resolved
      end
      return (resolved == "/" and "" or resolved) .. "/" .. tail
    end
    local parent, name = head:match("^(.*)/([^/]+)$")
    if parent == nil then
      return cleaned
    end
    tail = tail and (name .. "/" .. tail) or name
    head = parent == "" and "/" or parent
  end
end

-- Return the key of a repository reached over ssh. A path that does not
-- start with "/" is relative to the remote home directory, which borg
-- writes as "/./path" or "/~/path" in a URL.
local function ssh_key(user, host, port, path)
  if port == nil or port == "" or port == "22" then
    port = ""
  else
    port = ":" .. port
  end
  path = path:gsub("^/~/", "/./")
  if path:sub(1, 1) ~= "/" then
    path = "/./" .. path
  end
  local relative = path:find("^/%./") ~= nil
  path = clean_path(relative and path:sub(4) or path)
  return string.format("ssh://%s%s%s%s%s", user or "", user and "@" or "",
    host:lower(), port, relative and ("/./" .. path) or path)
end

-- Return one key for the repository at text (no "::archive" part), with
-- cwd the directory that a relative path starts from (default: the
-- host's current directory).
function location.key(text, cwd)
  local rest = text:match("^file://(.*)$")
  if rest then
    return local_key(rest, cwd)
  end
  local user, host, port, path
  rest = text:match("^ssh://(.*)$")
  if rest then
    local name, after = rest:match("^([^@/]+)@(.*)$")
    if name then
      user, rest = name, after
    end
    host, port, path = rest:match("^(%[[^%]]+%]):?(%d*)(/.*)$")
    if host == nil then
      host, port, path = rest:match("^([^:/]+):?(%d*)(/.*)$")
    end
    if host then
      return ssh_key(user, host, port, path)
    end
    return text
  end
  if text:find("^%a[%w+.-]*://") then
    -- Another scheme (borg 2 adds sftp://, rest:// and more): compared
    -- as written, without a trailing slash.
    return (text:gsub("/+$", ""))
  end
  -- borg 1.2's scp-style form: [user@]host:path, with no "/" before ":".
  user, host, path = text:match("^([^@:/]+)@([^:/]+):(.+)$")
  if user == nil then
    host, path = text:match("^([^:/]+):(.+)$")
  end
  if host then
    return ssh_key(user, host, nil, path)
  end
  return local_key(text, cwd)
end

-- Return the value of BORG_REPO in env, a list of "NAME=value" strings.
local function borg_repo(env)
  for _, entry in ipairs(env or {}) do
    local value = entry:match("^BORG_REPO=(.*)$")
    if value then
      return value
    end
  end
  return nil
end

-- Return the key of the repository that a call works on, or nil when
-- the command takes no repository (umount, serve) or none is given.
-- spec is the command's catalogue entry, args its merged arguments, env
-- the child's environment as a list of "NAME=value", cwd the child's
-- working directory or nil.
function location.of_call(spec, args, env, cwd)
  local first = spec.positionals[1]
  if first == nil or first.name ~= "location" then
    return nil
  end
  local repository = ""
  if args[1] ~= nil then
    repository = location.split(tostring(args[1]))
  end
  if repository == "" then
    repository = borg_repo(env)
  end
  if repository == nil or repository == "" then
    return nil
  end
  return location.key(repository, cwd)
end

return location
