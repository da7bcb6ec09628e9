-- The interactive prompt: borg.repl's display of values and its Tab
-- completion, then the real program driven through a terminal in tmux.

local helpers = require "helpers"
local env = require "borg.env"
local repl = require "borg.repl"
local errors = require "borg.errors"

local q = helpers.quote

describe("repl.show", function()
  it("quotes strings and escapes control bytes", function()
    assert.are.equal('"a\\"b\\nc\\0"', repl.show('a"b\nc\0'))
  end)

  it("shows numbers, booleans and nil as Lua does", function()
    assert.are.equal("1\n2.5\ntrue\nnil", repl.show(1, 2.5, true, nil))
  end)

  it("keeps a small table on one line with sorted keys", function()
    assert.are.equal('{ 10, 20, b = 2, name = "x", ["two words"] = 1 }',
      repl.show { 10, 20, name = "x", b = 2, ["two words"] = 1 })
  end)

  it("indents nested tables that do not fit one line", function()
    local id = string.rep("f", 40)
    local text = repl.show { archives = { { name = "a1", id = id } },
                             encryption = { mode = "none" } }
    assert.are.equal('{\n'
      .. '  archives = { { id = "' .. id .. '", name = "a1" } },\n'
      .. '  encryption = { mode = "none" }\n'
      .. '}', text)
    id = string.rep("f", 64)
    text = repl.show { archives = { { name = "a1", id = id } } }
    assert.are.equal('{\n'
      .. '  archives = {\n'
      .. '    {\n'
      .. '      id = "' .. id .. '",\n'
      .. '      name = "a1"\n'
      .. '    }\n'
      .. '  }\n'
      .. '}', text)
  end)

  it("cuts a long array with a count", function()
    local list = {}
    for i = 1, 25 do
      list[i] = i * 1000
    end
    local text = repl.show(list)
    assert.truthy(text:find("^{\n  1000,\n  2000,\n"), text)
    assert.truthy(text:find("  20000,\n  %.%.%. 5 more items %(25 in all%)\n}$"), text)
    assert.falsy(text:find("21000", 1, true), text)
  end)

  it("cuts a long string with its length", function()
    local text = repl.show(string.rep("x", 1000))
    assert.are.equal('"' .. string.rep("x", 400) .. '"... (1000 bytes)', text)
  end)

  it("shows an error object as its message and fields", function()
    local err = errors.new { kind = "borg", command = "list", rc = 2,
                             msgid = "Repository.DoesNotExist",
                             message = "repository /r does not exist",
                             hint = "Check the path" }
    assert.are.equal('borg list: repository /r does not exist (Repository.DoesNotExist,'
      .. ' rc 2). Check the path { command = "list", kind = "borg",'
      .. ' msgid = "Repository.DoesNotExist", rc = 2 }', repl.show(err))
    assert.are.equal("error: " .. repl.show(err), repl.show_error(err))
  end)

  it("hides object fields and secret entries", function()
    local object = setmetatable({ fds = { [20] = "pass-word-1" } },
      { __tostring = function() return "<object>" end })
    assert.are.equal("<object>", repl.show(object))
    assert.are.equal('{ "BORG_PASSPHRASE=' .. env.MASK .. '", "BORG_REPO=/r" }',
      repl.show({ "BORG_PASSPHRASE=pass-word-1", "BORG_REPO=/r" }))
    local failing = setmetatable({}, { __tostring = function() error("no text") end })
    assert.are.equal("{ [<table>] = 1 }", repl.show({ [failing] = 1 }))
  end)

  it("marks a cycle instead of looping", function()
    local t = { name = "t" }
    t.self = t
    assert.are.equal('{ name = "t", self = <cycle> }', repl.show(t))
  end)

  it("masks the values of secret names", function()
    local api = { env = { BORG_PASSPHRASE = "topsecret9", BORG_REPO = "/r" } }
    local shown = repl.show(api)
    assert.is_nil(shown:find("topsecret9", 1, true), shown)
    assert.truthy(shown:find('BORG_PASSPHRASE = "********"', 1, true), shown)
    assert.truthy(shown:find('BORG_REPO = "/r"', 1, true), shown)
  end)

  it("survives a failing __tostring", function()
    local odd = setmetatable({}, { __tostring = function() error("no") end })
    assert.are.equal("{}", repl.show(odd))
    assert.truthy(repl.show(print):find("^function: "), repl.show(print))
  end)
end)

describe("repl.complete", function()
  after_each(function()
    _G.repl_spec_api = nil
  end)

  it("completes a field of borg to a command", function()
    assert.are.equal("ate", (repl.complete("borg.cre")))
    assert.are.equal("mat", (repl.complete("x = borg.for")))
  end)

  it("completes the options of the command being called", function()
    assert.are.equal("ression=", (repl.complete('borg.create{ "/r::a", comp')))
    assert.are.equal("st=", (repl.complete('borg.list({ "/r",\n la')))
    assert.are.equal("evel=", (repl.complete('borg.check{ "/r", log_l')))
    -- After "=" comes a value, which is a global name, not an option.
    assert.are.equal("int", (repl.complete('borg.create{ compression = pr')))
  end)

  it("completes the run options in the second table", function()
    assert.are.equal("meout=", (repl.complete('borg.create({ "/r::a", "/" }, { ti')))
    local insert, listing = repl.complete('borg.create({ "/r::a", "/" }, { cwd = "/",'
      .. ' on_', 80)
    assert.are.equal("", insert)
    assert.are.equal("on_file=      on_log=       on_progress=  on_prompt=", listing)
    assert.are.equal("", (repl.complete('print({ "/r" }, { ti')))
  end)

  it("completes the commands and options of an instance", function()
    _G.repl_spec_api = require("borg").new()
    assert.are.equal("ne", (repl.complete("repl_spec_api:pru")))
    assert.are.equal("sion", (repl.complete("repl_spec_api:ver")))
    assert.are.equal("", (repl.complete("repl_spec_api:ne")))
    assert.are.equal("aily=", (repl.complete("repl_spec_api:prune{ keep_d")))
  end)

  it("completes fields made on first use", function()
    _G.repl_spec_fresh = require("borg").new()
    assert.is_nil(rawget(_G.repl_spec_fresh, "iter"))
    assert.are.equal("st", (repl.complete("repl_spec_fresh.iter.li")))
    assert.are.equal("er", (repl.complete("repl_spec_fresh.it")))
    assert.are.equal("environ", (repl.complete("repl_spec_fresh:set_")))
    assert.are.equal("nning", (repl.complete("borg.pla")))
    local _, listing = repl.complete("borg.iter.", 200)
    assert.truthy(listing:find("extract", 1, true), listing)
  end)

  it("runs no __index function of the script", function()
    local ran = 0
    _G.repl_spec_decoy = setmetatable({}, {
      __index = function() ran = ran + 1 end,
      __metatable = { __index = { foo = print, bar = print } },
    })
    repl.complete("repl_spec_decoy:")
    repl.complete("repl_spec_decoy.foo.")
    assert.are.equal(0, ran)
  end)

  it("completes globals and keywords", function()
    assert.are.equal("int", (repl.complete("pr")))
    assert.are.equal("ction", (repl.complete("local f = fun")))
  end)

  it("lists the candidates when several remain", function()
    local insert, listing = repl.complete("borg.ke", 50)
    assert.are.equal("y_", insert)
    insert, listing = repl.complete("borg.key_", 50)
    assert.are.equal("", insert)
    -- key_change_location is a borg 2 command.
    assert.are.equal("key_change_location     key_change_passphrase\n"
      .. "key_export              key_import\n"
      .. "key_migrate_to_repokey", listing)
  end)

  it("completes nothing inside a string or after a call", function()
    assert.are.equal("", (repl.complete('print("borg.cre')))
    assert.are.equal("", (repl.complete('f().cre')))
    assert.are.equal("", (repl.complete('-- borg.cre')))
    assert.are.equal("", (repl.complete('x = [==[ borg.cre')))
  end)

  it("completes after closed strings and comments", function()
    assert.are.equal("ate", (repl.complete('x = [[a]] .. "{" --[=[ ( ]=] borg.cre')))
    assert.are.equal("ate", (repl.complete('-- note\nborg.cre')))
    assert.are.equal("ression=", (repl.complete('borg.create{ "a\\"}", comp')))
  end)
end)

-- Drive build/borglua in a tmux pane of its own server (a private
-- socket) as a person would at a terminal.
describe("the prompt in a terminal", function()
  local dir, socket

  local function tmux(args)
    return helpers.shell("tmux -S " .. q(socket) .. " " .. args .. " 2>&1")
  end

  -- Return the text of the pane without its trailing empty lines.
  local function screen()
    return (tmux("capture-pane -p -t repl"):gsub("[\n ]+$", ""))
  end

  -- Wait up to 20 s until the screen shows the Lua pattern; return it.
  local function wait_for(pattern)
    local text
    for _ = 1, 200 do
      text = screen()
      if text:find(pattern) then
        return text
      end
      os.execute("sleep 0.1")
    end
    error("the screen never showed " .. pattern .. ":\n" .. text, 2)
  end

  local function type_text(text)
    tmux("send-keys -t repl -l " .. q(text))
  end

  local function press(key)
    tmux("send-keys -t repl " .. key)
  end

  before_each(function()
    dir = helpers.tmpdir()
    socket = dir .. "/tmux.sock"
  end)

  after_each(function()
    tmux("kill-server")
    helpers.rmdir(dir)
  end)

  it("completes, shows a listing and keeps history", function()
    local api = helpers.instance(dir)
    local repo = dir .. "/repo"
    api.init { repo, encryption = "none" }
    api.create { repo .. "::a1", helpers.source_tree(dir) }

    local borglua = "env -u BORG_REPO -u BORG_PASSPHRASE -u BORG_PASSCOMMAND"
      .. " HOME=" .. q(dir) .. " XDG_STATE_HOME=" .. q(dir .. "/state")
      .. " BORG_BASE_DIR=" .. q(dir .. "/base") .. " BORG_SELFTEST=disabled "
      .. q(helpers.borglua)
    -- Under load, tmux 3.3a now and then misses the exit of a pane's
    -- process (seen with lua5.4 too), so a shell prints borglua's exit
    -- status and the spec waits for that line. The shell traps SIGINT, so
    -- Ctrl-C does not end it, and borglua gets the default action back.
    local command = "sh -c " .. q('trap : INT; ' .. borglua
      .. '; echo "[borglua exited: $?]"')
    local _, status = tmux("-f /dev/null new-session -d -s repl -x 120 -y 50 "
      .. q(command))
    assert.are.equal(0, status)
    tmux("set-option -t repl remain-on-exit on")
    wait_for("^borglua %d+%.%d+%.%d+ %(Lua 5%.4%): Tab completes names, Ctrl%-D ends"
      .. " the session\n>$")

    type_text("borg.cre")
    press("Tab")
    wait_for("> borg%.create")
    press("C-u")

    type_text('borg.list{ "' .. repo .. '", las')
    press("Tab")
    wait_for('> borg%.list{ "[^"]*", last=')
    type_text("1 }")
    press("Enter")
    local text = wait_for('\n>$')
    assert.truthy(text:find('\n  archives = {\n', 1, true), text)
    assert.truthy(text:find('name = "a1"', 1, true), text)
    assert.truthy(text:find('\n  encryption = { mode = "none" },\n', 1, true), text)
    -- Kept for a person to look at: the screen with the listing.
    helpers.write(helpers.top .. "/build/repl-screen.txt", text .. "\n")

    -- Ctrl-C stops a chunk that runs Lua code, and the session goes on.
    press("C-l")
    type_text('print("looping") n = 0 while true do n = n + 1 end')
    press("Enter")
    wait_for("\nlooping")
    press("C-c")
    wait_for("interrupted!")
    type_text("n > 0")
    press("Enter")
    wait_for("\ntrue\n>$")

    press("C-d")
    wait_for("%[borglua exited: 0%]")
    local history = helpers.read(dir .. "/state/borglua/history")
    assert.truthy(history and history:find("last=1", 1, true), history)
    assert.are.equal("600\n", helpers.shell("stat -c %a "
      .. q(dir .. "/state/borglua/history")))
    assert.are.equal("700\n", helpers.shell("stat -c %a " .. q(dir .. "/state/borglua")))

    -- A new session recalls the last line with the up arrow.
    tmux("respawn-pane -k -t repl " .. q(command))
    wait_for("session\n>$")
    press("Up")
    wait_for("\n> n > 0$")
    press("Up")
    press("Up")
    wait_for('\n> borg%.list{ "[^"]*", last=1 }$')
    press("C-u")
    press("C-d")
    wait_for("%[borglua exited: 0%]")
  end)
end)
