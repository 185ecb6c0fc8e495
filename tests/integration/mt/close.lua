-- close.lua - connections that end early: only close, abrupt drops; the daemon keeps serving
dofile(mtdir .. "/common.lua")

-- negotiation, then QUIT: xxfi_close is the only callback
local conn = open(nil, nil, nil)
mt.disconnect(conn)
ok("negotiate + close")
-- QUIT with no negotiation at all
conn = mt.connect(sock, 50, 0.1)
check(conn ~= nil, "mt.connect() failed")
mt.disconnect(conn)
ok("connect + close")
-- an abrupt drop in the middle of the headers
conn = open(nil, nil, nil)
envelope(conn, "MT0000009", "d.okafor@example.com", "support@shop.example")
check(mt.header(conn, "From", "d.okafor@example.com") == nil, "mt.header() failed")
mt.disconnect(conn, false)
ok("dropped in the middle of the headers")
-- and still serving
conn = open(nil, nil, nil)
message(conn, "MT0000010", CLEAN, CLEAN_BODY)
tagged(conn, "after early closes")
ok("still serving")
mt.disconnect(conn)
