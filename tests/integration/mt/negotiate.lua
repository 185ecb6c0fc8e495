-- negotiate.lua - protocol 6 with everything offered: the daemon asks only for what it uses
dofile(mtdir .. "/common.lua")

local conn = open(nil, nil, nil)
check(mt.test_action(conn, SMFIF_ADDHDRS), "does not ask to add headers")
check(mt.test_action(conn, SMFIF_CHGHDRS), "does not ask to change headers")
for _, a in ipairs({ SMFIF_CHGBODY, SMFIF_ADDRCPT, SMFIF_DELRCPT, SMFIF_QUARANTINE, SMFIF_CHGFROM }) do
	check(not mt.test_action(conn, a), "asks for action " .. a .. " it never needs")
end
check(not mt.test_option(conn, SMFIP_NOHDRS), "skips headers (cannot remove forged ones)")
check(not mt.test_option(conn, SMFIP_NOBODY), "skips the body")
check(not mt.test_option(conn, SMFIP_NOMAIL), "skips MAIL FROM")
ok("protocol 6: actions ADDHDRS+CHGHDRS only, headers and body taken")
message(conn, "MT0000001", CLEAN, CLEAN_BODY)
tagged(conn, "protocol 6")
ok("protocol 6: message tagged")
mt.disconnect(conn)
