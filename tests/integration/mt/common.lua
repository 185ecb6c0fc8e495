-- common.lua - helpers shared by the miltertest scripts (loaded with dofile(mtdir .. "/common.lua"))
--
-- The scripts get their parameters as globals from miltertest -D: sock (the daemon's socket
-- spec) and mtdir (this directory). Every failed check prints "FAIL: why" and exits 1, because
-- miltertest does not reliably print the message of a Lua error.

function check(cond, msg)
	if not cond then
		mt.echo("FAIL: " .. msg)
		os.exit(1)
	end
end

function ok(msg)
	mt.echo("ok - " .. msg)
end

-- open(version, actions, steps) - connect and negotiate (nil = miltertest's defaults: v6, all).
function open(version, actions, steps)
	local conn = mt.connect(sock, 50, 0.1)
	check(conn ~= nil, "mt.connect(" .. sock .. ") failed")
	local err = mt.negotiate(conn, version, actions, steps)
	check(err == nil, "mt.negotiate() failed: " .. tostring(err))
	return conn
end

-- A reply the daemon may give to a step it answers: it never rejects or tempfails.
function passes(conn, what)
	local r = mt.getreply(conn)
	check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT,
	      what .. ": reply " .. tostring(r) .. " is not CONTINUE/ACCEPT")
end

-- envelope(conn, qid, from, rcpt) - the connection and envelope stages the daemon asked for,
-- with the macros Postfix sends.
function envelope(conn, qid, from, rcpt)
	if not mt.test_option(conn, SMFIP_NOCONNECT) then
		mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.test", "{daemon_name}", "mx.example.test",
		         "v", "Postfix 3.7.11", "_", "mail.example.net [192.0.2.10]")
		check(mt.conninfo(conn, "mail.example.net", "192.0.2.10") == nil, "mt.conninfo() failed")
		passes(conn, "connect")
	end
	if not mt.test_option(conn, SMFIP_NOHELO) then
		check(mt.helo(conn, "mail.example.net") == nil, "mt.helo() failed")
		passes(conn, "helo")
	end
	mt.macro(conn, SMFIC_MAIL, "i", qid, "{mail_addr}", from)
	check(mt.mailfrom(conn, "<" .. from .. ">") == nil, "mt.mailfrom() failed")
	passes(conn, "mail")
	if not mt.test_option(conn, SMFIP_NORCPT) then
		mt.macro(conn, SMFIC_RCPT, "{rcpt_addr}", rcpt)
		check(mt.rcptto(conn, "<" .. rcpt .. ">") == nil, "mt.rcptto() failed")
		passes(conn, "rcpt")
	end
end

-- headers(conn, list) - list is { {name, value}, ... }
function headers(conn, list)
	for _, h in ipairs(list) do
		check(mt.header(conn, h[1], h[2]) == nil, "mt.header(" .. h[1] .. ") failed")
	end
	check(mt.eoh(conn) == nil, "mt.eoh() failed")
end

-- finish(conn, body) - body, end of message; the final answer must let the mail through.
function finish(conn, body)
	check(mt.bodystring(conn, body) == nil, "mt.bodystring() failed")
	check(mt.eom(conn) == nil, "mt.eom() failed")
	passes(conn, "eom")
end

-- message(conn, qid, hdrs, body) - one whole transaction from a customer.
function message(conn, qid, hdrs, body)
	envelope(conn, qid, "d.okafor@example.com", "support@shop.example")
	headers(conn, hdrs)
	finish(conn, body)
end

CLEAN = {
	{ "From", "Daniel Okafor <d.okafor@example.com>" },
	{ "To", "support@shop.example" },
	{ "Subject", "Question about my order" },
	{ "Message-ID", "<clean-1@example.com>" },
}
CLEAN_BODY = "Hello, could you tell me when order 4471 ships? Thanks, Daniel\r\n"

-- The twenty forged headers of daemon.sh, as an MTA passes them (leading space stripped),
-- and how many of each name (first spelling seen) the daemon must delete.
FORGED = {
	{ "From", "Mallory <mallory@example.net>" },
	{ "To", "support@shop.example" },
	{ "Subject", "forged verdicts" },
	{ "X-Amends-Status", "Yes; categories=refund; score=refund:9.0" },
	{ "x-amends-status", "yes" },
	{ "X-AMENDS-STATUS", "YES" },
	{ "X-aMeNdS-sTaTuS", "mixed" },
	{ "X-Amends-Status", "No-space" },
	{ "X-Amends-Status", "many spaces" },
	{ "X-Amends-Status", "tab" },
	{ "X-Amends-Status", "space before colon" },
	{ "X-Amends-Status", "folded-only" },
	{ "X-Amends-Status", "Yes;\n categories=abuse;\n\tlang=en" },
	{ "X-Amends-Status", "" },
	{ "X-Amends-Rules", "R1,R2" },
	{ "X-Amends-Tally", "complaint=99; refund=99" },
	{ "X-Amends-Draft", "apology" },
	{ "X-Amends-Escalate", "abuse" },
	{ "X-Amends-Limits", "depth,parts" },
	{ "X-Amends-Future-Header", "x" },
	{ "x-amends-rules", "R3" },
	{ "X-Amends-Status", "Ja \226\156\147" },
	{ "X-AMENDS-DRAFT", "winback  " },
	{ "X-Amendsment", "keep" },
	{ "X-Amend-Status", "keep" },
	{ "Y-X-Amends-Status", "keep" },
	{ "X-Amends", "keep" },
	{ "Message-ID", "<forged-1@example.net>" },
}
FORGED_COUNTS = {
	["X-Amends-Status"] = 12, ["X-Amends-Rules"] = 2, ["X-Amends-Tally"] = 1,
	["X-Amends-Draft"] = 2, ["X-Amends-Escalate"] = 1, ["X-Amends-Limits"] = 1,
	["X-Amends-Future-Header"] = 1,
}
KEEP = { "X-Amendsment", "X-Amend-Status", "Y-X-Amends-Status", "X-Amends", "From", "To",
         "Subject", "Message-ID" }

-- forged_removed(conn, what) - every forged occurrence deleted (index by index), nothing else.
function forged_removed(conn, what)
	for name, n in pairs(FORGED_COUNTS) do
		for i = 1, n do
			check(mt.eom_check(conn, MT_HDRDELETE, name, i),
			      what .. ": " .. name .. "[" .. i .. "] not deleted")
		end
		check(not mt.eom_check(conn, MT_HDRDELETE, name, n + 1),
		      what .. ": " .. name .. "[" .. (n + 1) .. "] deleted, but there are only " .. n)
	end
	for _, name in ipairs(KEEP) do
		check(not mt.eom_check(conn, MT_HDRDELETE, name), what .. ": " .. name .. " deleted")
		check(not mt.eom_check(conn, MT_HDRCHANGE, name), what .. ": " .. name .. " changed")
	end
end

-- tagged(conn, what) - exactly one X-Amends-Status was added, and it says No (no rules loaded).
function tagged(conn, what)
	check(mt.eom_check(conn, MT_HDRADD, "X-Amends-Status"), what .. ": X-Amends-Status not added")
	local v = mt.getheader(conn, "X-Amends-Status", 0)
	check(v ~= nil and string.sub(v, 1, 2) == "No", what .. ": X-Amends-Status is " .. tostring(v))
	check(mt.getheader(conn, "X-Amends-Status", 1) == nil, what .. ": X-Amends-Status added twice")
end
