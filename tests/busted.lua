-- Run busted inside borglua, so that the specs use the borg library
-- embedded in the program under test:
--
--   build/borglua tests/busted.lua [busted options] [spec files]
--
-- busted exits by itself when a spec fails. When all pass it returns, and
-- the explicit exit keeps borglua from exiting with 1 because some specs
-- made borg warn on purpose.
require "busted.runner" { standalone = false }
os.exit(0, true)
