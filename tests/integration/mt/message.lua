-- message.lua - one full message, Postfix's macros: exactly the verdict header is added
dofile(mtdir .. "/common.lua")

local conn = open(nil, nil, nil)
message(conn, "MT0000003", CLEAN, CLEAN_BODY)
check(mt.eom_check(conn, MT_HDRADD, "X-Amends-Status", "No; lang=en"),
      "expected X-Amends-Status: No; lang=en, got " .. tostring(mt.getheader(conn, "X-Amends-Status", 0)))
tagged(conn, "message")
check(not mt.eom_check(conn, MT_HDRDELETE), "a header was deleted from a clean message")
check(not mt.eom_check(conn, MT_HDRCHANGE), "a header was changed in a clean message")
check(not mt.eom_check(conn, MT_HDRINSERT, "X-Amends-Rules"), "X-Amends-Rules with no rules loaded")
check(not mt.eom_check(conn, MT_BODYCHANGE), "the body was changed")
ok("X-Amends-Status: No; lang=en added, nothing else touched")
mt.disconnect(conn)
