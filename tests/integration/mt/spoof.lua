-- spoof.lua - 20 forged X-Amends-* headers (case, folding, repeats, whitespace): all removed
dofile(mtdir .. "/common.lua")

local conn = open(nil, nil, nil)
message(conn, "MT0000004", FORGED, "Nothing to see here.\r\n")
forged_removed(conn, "spoof")
tagged(conn, "spoof")
ok("20 forged headers deleted by index, look-alikes kept, verdict added")
mt.disconnect(conn)
