-- The version layer of a call: borg 1.2's command line, or borg 2's.
--
-- Callers write borgapi's command names, "repo::archive" locations and
-- borg 1.2's option names, whichever borg an instance runs. For a borg
-- whose --version prints 2.x, this module turns such a call into borg 2's
-- command line: repository commands (rcreate, rlist, rinfo, rdelete, or
-- repo-create and so on in later betas), `--repo=REPO` with the archive
-- name as a positional or as an exact `--match-archives` pattern, and the
-- renamed options. Commands that only one version has raise a usage
-- error on the other. All errors here are usage errors: nothing runs.

local argv = require "borg.argv"
local catalogue = require "borg.catalogue"
local env = require "borg.env"
local errors = require "borg.errors"
local probe_version = require "borg.version"
local schema = require "borg.schema"

local borg2 = {}

-- The borg 2 catalogue, loaded on first use, so that a script for borg
-- 1.2 does not pay for building it at start-up.
local catalogue2 = setmetatable({}, {
  __index = function(_, key)
    return require("borg.catalogue2")[key]
  end,
})
borg2.catalogue = catalogue2

-- Commands that only borg 2 has, under the names callers use. Their first
-- positional is a repository location, like the 1.2 commands'; for
-- benchmark_cpu there is none.
borg2.ONLY = { "benchmark_cpu", "key_change_location", "rcompress", "transfer" }
local TWO_ONLY = {}
for _, name in ipairs(borg2.ONLY) do
  TWO_ONLY[name] = true
end

-- Commands that only borg 1.2 has, and what to do instead on borg 2.
local ONE_ONLY = {
  upgrade = "borg 2 reads 1.2 repositories only through transfer: create a new"
    .. " repository with init and copy the archives with borg.transfer{ new,"
    .. " other_repo = old, upgrader = \"From12To20\" }",
  key_migrate_to_repokey = "borg 2 has no passphrase-mode repositories; use"
    .. " key_change_location to move a key between keyfile and repokey",
}

-- Repository commands of borg 2 by the caller's command; their words get
-- the prefix of the installed borg 2 ("r" or "repo-").
local REPOSITORY_COMMANDS = { init = "create", list = "list", info = "info",
                              delete = "delete", rcompress = "compress" }
local REPOSITORY_WORDS = {}
for _, word in pairs(REPOSITORY_COMMANDS) do
  REPOSITORY_WORDS[word] = true
end

-- borg 2 commands whose first positional is an archive name (config's
-- first positional "name" is a setting's name).
local ARCHIVE_FIRST = { create = true, extract = true, diff = true, export_tar = true,
                        import_tar = true, list = true, rename = true,
                        debug_dump_archive = true, debug_dump_archive_items = true }

-- Options of borg 1.2 that borg 2 names differently.
local RENAMED = {
  numeric_owner = "numeric_ids",
  nobsdflags = "noflags",
  remote_ratelimit = "upload_ratelimit",
  remote_buffer = "upload_buffer",
}

-- Options of borg 1.2 that are no-ops there and absent from borg 2.
local DROPPED = { noatime = true }

-- Options that select archives: with them, list, info and delete of a
-- repository work on archives, not on the repository itself.
local SELECTORS = { "first", "last", "glob_archives", "prefix", "match_archives",
                    "newer", "newest", "older", "oldest" }

-- borg 1.2's encryption modes and borg 2's equivalent (same cipher family,
-- AES in OCB mode where 1.2 used AES-CTR with HMAC).
local ENCRYPTION = {
  repokey = "repokey-aes-ocb",
  keyfile = "keyfile-aes-ocb",
  ["repokey-blake2"] = "repokey-blake2-aes-ocb",
  ["keyfile-blake2"] = "keyfile-blake2-aes-ocb",
}

-- Return true when name is a command of either version.
function borg2.is_command(name)
  return TWO_ONLY[name] or catalogue.commands[name] ~= nil
end

-- Return the repository and the archive of a location "repo::archive";
-- the archive is nil when the location names only a repository.
local function split_location(location)
  local first, last = location:find("::", 1, true)
  if first == nil then
    return location, nil
  end
  local archive = location:sub(last + 1)
  return location:sub(1, first - 1), archive ~= "" and archive or nil
end

-- Return text with every character that a Python regular expression could
-- read as syntax escaped. Python rejects escaped ASCII letters and digits,
-- so only other ASCII characters are escaped.
local function regex_escape(text)
  return (text:gsub("[^%w\128-\255]", "\\%0"))
end

-- Return text with the characters of a shell pattern escaped.
local function glob_escape(text)
  return (text:gsub("[%*%?%[%]\\]", "[%0]"))
end

local function has_selector(args)
  for _, name in ipairs(SELECTORS) do
    if args[name] ~= nil and args[name] ~= false then
      return true
    end
  end
  return false
end

-- Return the catalogue key of borg 2's command for a call of command with
-- the location's archive (or nil) and the merged arguments.
local function target_of(command, archive, args)
  if command == "init" or command == "rcompress" then
    return "r" .. REPOSITORY_COMMANDS[command]
  end
  if archive ~= nil or not REPOSITORY_COMMANDS[command] then
    return command
  end
  if command == "list" then
    return "rlist"
  end
  if has_selector(args) or (command == "delete" and args[2] ~= nil) then
    return command
  end
  return "r" .. command
end

-- Return the catalogue entry of target with the words of the installed
-- borg 2, whose repository commands are rcreate... or repo-create...
local function spec_of(target, prefix)
  local spec = catalogue2.commands[target]
  local base = spec.words[1]:match("^r(%l+)$")
  if prefix == "repo-" and base and REPOSITORY_WORDS[base] then
    return setmetatable({ words = { prefix .. base } }, { __index = spec })
  end
  return spec
end

-- Return the match_archives pattern of the archive selection in args.
local function archive_pattern(command, args)
  local patterns = {}
  if args.glob_archives then
    patterns[#patterns + 1] = "sh:" .. args.glob_archives
  end
  if args.prefix then
    patterns[#patterns + 1] = "sh:" .. glob_escape(args.prefix) .. "*"
  end
  if args.match_archives then
    patterns[#patterns + 1] = args.match_archives
  end
  if #patterns > 1 then
    errors.usage(command, "give only one of 'glob_archives', 'prefix' and"
      .. " 'match_archives': borg 2 takes a single archive pattern")
  end
  return patterns[1]
end

-- Return the exact pattern for a list of archive names.
local function names_pattern(names)
  if #names == 1 then
    return "id:" .. names[1]
  end
  local escaped = {}
  for i, name in ipairs(names) do
    escaped[i] = regex_escape(name)
  end
  return "re:^(?:" .. table.concat(escaped, "|") .. ")$"
end

-- Copy the options of args into out under borg 2's names. from_instance
-- tells whether an option came from the instance's settings, which are
-- dropped where the command does not take them, as on 1.2.
local function translate_options(command, spec, args, out, skip, from_instance)
  for name, value in pairs(args) do
    if type(name) == "string" and not skip[name] and not DROPPED[name]
        and name ~= "glob_archives" and name ~= "prefix" and name ~= "match_archives" then
      local new_name = RENAMED[name] or name
      if command == "init" and name == "encryption" then
        value = ENCRYPTION[value] or value
      end
      if spec.options[new_name] then
        out[new_name] = value
      elseif from_instance(name) then
        -- dropped, like an instance option that a 1.2 command does not take
      elseif catalogue.commands[command] and catalogue.commands[command].options[name] then
        errors.usage(command, "option '%s' of borg 1.2 has no equivalent in borg"
          .. " 2's %s; leave it out for this borg", name, table.concat(spec.words, " "))
      else
        out[new_name] = value -- argv.build reports the unknown option
      end
    end
  end
end

-- Return borg 2's catalogue entry and argument table for a call of command
-- with the merged 1.2-style arguments args.
local function translate(layer, args, skip, from_instance)
  local command = layer.command
  local positionals = {}
  for i = 1, #args do
    positionals[i] = args[i]
  end
  local repo, archive
  if layer.takes_location and type(positionals[1]) == "string" then
    repo, archive = split_location(table.remove(positionals, 1))
  end
  local target = target_of(command, archive, args)
  local spec = spec_of(target, layer.version.repository_prefix)
  local out = {}
  translate_options(command, spec, args, out, skip, from_instance)
  if repo ~= nil and repo ~= "" then
    if args.repo ~= nil then
      errors.usage(command, "give the repository either in the location or as"
        .. " 'repo', not both")
    end
    out.repo = repo
  end
  local names = {}
  if archive then
    names[1] = archive
  end
  if target == "delete" then
    -- borg 1.2's delete takes more archive names after the repository.
    table.move(positionals, 1, #positionals, #names + 1, names)
    positionals = {}
  end
  local pattern = archive_pattern(command, args)
  local first = spec.positionals[1]
  if ARCHIVE_FIRST[target] then
    if archive == nil and first.min > 0 then
      errors.usage(command, "borg 2's %s needs an archive: write the location as"
        .. " \"repo::archive\"", table.concat(spec.words, " "))
    end
    if archive ~= nil then
      table.insert(positionals, 1, archive)
    end
  elseif #names > 0 then
    if not spec.options.match_archives then
      errors.usage(command, "borg 2's %s works on a whole repository: write the"
        .. " location without \"::%s\"", table.concat(spec.words, " "), names[1])
    end
    if pattern then
      errors.usage(command, "give either an archive in the location or an archive"
        .. " pattern, not both")
    end
    pattern = names_pattern(names)
  end
  if pattern then
    if not spec.options.match_archives then
      errors.usage(command, "borg 2's %s does not select archives by pattern",
        table.concat(spec.words, " "))
    end
    out.match_archives = pattern
  end
  if target == "key_export" and positionals[1] == nil then
    -- borg 1.2 writes the key to stdout when no path is given; 2.0.0b5
    -- crashes then, but takes "-" for stdout.
    positionals[1] = "-"
  end
  for i, value in ipairs(positionals) do
    out[i] = value
  end
  return spec, out
end

-- A layer for a call on borg 2.
local Layer2 = {}
Layer2.__index = Layer2

-- Build the argument vector (without the program) of the call with the
-- merged 1.2-style args; extra and skip as for argv.build.
function Layer2:build(args, extra, skip)
  local spec, translated = translate(self, args, skip, self.from_instance)
  return argv.build(self.command, spec, translated, extra, skip)
end

-- A layer for a call on borg 1.x: the caller's table is borg's.
local Layer1 = {}
Layer1.__index = Layer1

function Layer1:build(args, extra, skip)
  return argv.build(self.command, self.spec, args, extra, skip)
end

-- Return the union of the options of the catalogue entries in specs.
local function union_spec(specs)
  local options = {}
  for _, spec in ipairs(specs) do
    for name, option in pairs(spec.options) do
      options[name] = options[name] or option
    end
  end
  for old, new in pairs(RENAMED) do
    options[old] = options[old] or options[new]
  end
  return { options = options }
end

-- Return the option entries a caller may give command on borg 2, under
-- the caller's names.
local function caller_spec2(command)
  local specs = {}
  if catalogue.commands[command] then
    specs[#specs + 1] = catalogue.commands[command]
  end
  if catalogue2.commands[command] then
    specs[#specs + 1] = catalogue2.commands[command]
  end
  if REPOSITORY_COMMANDS[command] then
    specs[#specs + 1] = catalogue2.commands["r" .. REPOSITORY_COMMANDS[command]]
  end
  return union_spec(specs)
end

-- Return the set of option names that a caller may give command, on
-- either version.
function borg2.option_names(command)
  local names = {}
  for name in pairs(caller_spec2(command).options) do
    names[name] = true
  end
  return names
end

-- Return the layer for a call of command on instance inst. Probes the
-- program's version on its first call. A command that the instance's borg
-- does not have raises a usage error. args is the caller's table, to
-- tell options the call gave from those of the instance.
function borg2.layer(inst, command, args)
  local version = probe_version(inst.program, env.apply(env.host(), inst.env), command)
  if version.major < 2 then
    if TWO_ONLY[command] then
      errors.usage(command, "'%s' is a borg 2 command, and %s is borg %s; run it"
        .. " on an instance made with borg.new{ borg = \"borg2\" }", command,
        inst.program, version.string)
    end
    local spec = catalogue.commands[command]
    return setmetatable({ command = command, spec = spec, version = version },
      Layer1)
  end
  if ONE_ONLY[command] then
    errors.usage(command, "'%s' is a borg 1.2 command that borg 2 (%s) does not"
      .. " have: %s", command, version.string, ONE_ONLY[command])
  end
  local defaults = inst.defaults[command] or {}
  local takes_location = TWO_ONLY[command] and command ~= "benchmark_cpu"
    or (catalogue.commands[command].positionals[1] or {}).name == "location"
  local spec = caller_spec2(command)
  -- Like a 1.2 entry, the caller's first positional is the location.
  spec.positionals = takes_location and { { name = "location", min = 0, max = 1 } } or {}
  local layer = {
    command = command,
    version = version,
    spec = spec,
    takes_location = takes_location,
    from_instance = function(name)
      return args[name] == nil and defaults[name] == nil
    end,
  }
  return setmetatable(layer, Layer2)
end

-- Return the result with borg's documents in the shared schema.
function borg2.normalize(command, plan, result)
  return schema.result(command, plan, result)
end

return borg2
