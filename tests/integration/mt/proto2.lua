-- proto2.lua - an old MTA (protocol 2, v2 actions and steps): still tagged and cleaned
dofile(mtdir .. "/common.lua")

local conn = open(2, 0x3F, 0x7F)
check(mt.test_action(conn, SMFIF_ADDHDRS), "protocol 2: does not ask to add headers")
check(mt.test_action(conn, SMFIF_CHGHDRS), "protocol 2: does not ask to change headers")
ok("protocol 2 negotiated")
message(conn, "MT0000002", FORGED, "Nothing to see here.\r\n")
tagged(conn, "protocol 2")
forged_removed(conn, "protocol 2")
ok("protocol 2: tagged, forged headers removed")
mt.disconnect(conn)
