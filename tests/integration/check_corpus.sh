#!/bin/bash
# check_corpus.sh - acceptance of issue 3: `amendsctl check --json` over every dev-corpus message
# (messages/ and scenarios/) with the SHIPPED configuration (deadline raised) and rules shows
# the right text (subject, From name, each decoded part, the customer's new text = the corpus
# sources), the labelled language and exactly the labelled categories:
# tests/lib/check_corpus.py, which reuses corpus_decode.py's comparison. Exit 77 (skip) when
# python3 or the shared corpus is missing.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

CORPUS="$SHARED_DIR/corpus/dev"
PYTHON3=${PYTHON3:-python3}
command -v "$PYTHON3" >/dev/null 2>&1 || skip "python3 not found"
[ -f "$CORPUS/tools/sources.json" ] || skip "shared corpus not found at $CORPUS"
[ -x "$AMENDSCTL" ] || fail "$AMENDSCTL is not built"

acc_config "$T_TMP/amends.conf" state="$T_TMP/state" store=none
# The one change to the shipped values: the rule phase's deadline (50 ms; a rule's budget is a
# tenth of it, with a hard wall stop at 8 budgets) measures wall time, and on a loaded host
# (make -j, CI) ordinary rules were stopped (046, 247 at load 18 on 2 vCPUs), changing hits and
# scores. As in amendsctl eval, the test measures the rules, not the machine: 5 s.
sed -i 's|^\([[:space:]]*deadline_ms[[:space:]]*=[[:space:]]*\)[0-9]*|\15000|' "$T_TMP/amends.conf"
acc_config_has "$T_TMP/amends.conf" "deadline_ms = 5000;"
"$PYTHON3" "$top_srcdir/tests/lib/check_corpus.py" "$AMENDSCTL" "$T_TMP/amends.conf" "$CORPUS" \
	>"$T_TMP/check_corpus.out" 2>&1
rc=$?
cat "$T_TMP/check_corpus.out"
[ "$rc" = 0 ] || fail "amendsctl check disagrees with the corpus (see above)"
ok "amendsctl check: text, language and categories of every dev-corpus message"

# X-Amends-Tally reports a store's counts only (pipeline.c tally_header): with store = "none"
# there is no tally, so no header, though the message is a complaint.
"$AMENDSCTL" -c "$T_TMP/amends.conf" check "$CORPUS/messages/003.eml" >"$T_TMP/none.txt" ||
	fail "amendsctl check 003.eml failed"
assert_grep '^X-Amends-Status: Yes; categories=complaint' "$T_TMP/none.txt" "003.eml is a complaint"
assert_no_grep '^X-Amends-Tally' "$T_TMP/none.txt" "store = none: no X-Amends-Tally (no count to report)"

# One stretch of text counts once per category (verdict.c), and the explanation says so: "هر بار"
# (every time) is a weak complaint cue in both ur.rules and fa.rules. Counted twice it made a
# complaint of "every time I ordered from you everything was great, thank you"; now the score is
# one cue's, and the second hit names the first.
printf 'From: a@example.org\nTo: b@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\nهر بار که از شما سفارش دادم همه چیز عالی بود. ممنونم!\n' \
	>"$T_TMP/same.eml"
"$AMENDSCTL" -c "$T_TMP/amends.conf" check --json "$T_TMP/same.eml" >"$T_TMP/same.json" ||
	fail "amendsctl check --json same.eml failed"
"$PYTHON3" - "$T_TMP/same.json" <<'PY' || fail "a word matched by two rule files was counted twice (see above)"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
hits = [h for h in r["hits"] if h["category"] == "complaint"]
counted = [h for h in hits if h["counted"]]
shadowed = [h for h in hits if not h["counted"]]
ok = (len(hits) >= 2 and len(counted) == 1 and r["scores"].get("complaint") == counted[0]["score"]
      and all(h["same_text_as"] == counted[0]["rule"] for h in shadowed)
      and "complaint" not in r["categories"])
if not ok:
    print(json.dumps(r, ensure_ascii=False, indent=1))
sys.exit(0 if ok else 1)
PY
"$AMENDSCTL" -c "$T_TMP/amends.conf" check "$T_TMP/same.eml" >"$T_TMP/same.txt" ||
	fail "amendsctl check same.eml failed"
grep -q '(same text as [A-Z_]*: not counted again)' "$T_TMP/same.txt" ||
	{ cat "$T_TMP/same.txt"; fail "the text explanation does not say which hit was not counted"; }
ok "one stretch of text counts once per category, and check explains it"

# A rule group is one cue (verdict.c): RO_UNETHICAL_CUE_ALTER was split in two under the
# 4096-byte pattern limit, and its halves share "group RO_UNETHICAL_CUE_ALTER". A message that
# hits both halves, and no other unethical cue, scores one weak cue (0.5, below the threshold),
# not two; the explanation names the half that counted.
printf 'From: a@example.org\nTo: b@example.com\nSubject: bill\nContent-Type: text/plain; charset=utf-8\n\nAslam o alaikum, bill mein 5000 likh dein aur attendance bhi laga dein. Shukriya\n' \
	>"$T_TMP/group.eml"
"$AMENDSCTL" -c "$T_TMP/amends.conf" check --json "$T_TMP/group.eml" >"$T_TMP/group.json" ||
	fail "amendsctl check --json group.eml failed"
"$PYTHON3" - "$T_TMP/group.json" <<'PY' || fail "the two halves of one rule group counted twice (see above)"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
hits = {h["rule"]: h for h in r["hits"] if h["category"] == "unethical"}
a, b = hits.get("RO_UNETHICAL_CUE_ALTER"), hits.get("RO_UNETHICAL_CUE_ALTER_2")
ok = (a is not None and b is not None and len(hits) == 2
      and a["counted"] and a["group_counted_as"] is None
      and not b["counted"] and b["group_counted_as"] == "RO_UNETHICAL_CUE_ALTER"
      and b["same_text_as"] is None
      and r["scores"].get("unethical") == 0.5 and "unethical" not in r["categories"])
if not ok:
    print(json.dumps(r, ensure_ascii=False, indent=1))
sys.exit(0 if ok else 1)
PY
"$AMENDSCTL" -c "$T_TMP/amends.conf" check "$T_TMP/group.eml" >"$T_TMP/group.txt" ||
	fail "amendsctl check group.eml failed"
grep -q 'RO_UNETHICAL_CUE_ALTER_2 .*(group RO_UNETHICAL_CUE_ALTER: counted once, as RO_UNETHICAL_CUE_ALTER)' "$T_TMP/group.txt" ||
	{ cat "$T_TMP/group.txt"; fail "the text explanation does not say which rule of the group counted"; }
ok "a rule group counts once, and check explains it"

# eval explains its misses with the same words (verdict_why): labelled as what they are not
# counted to be, both messages are misses, and the text and JSON name the hit that counted.
mkdir -p "$T_TMP/why/messages"
cp "$T_TMP/same.eml" "$T_TMP/group.eml" "$T_TMP/why/messages/"
printf 'file\tlang\tcategories\tencoding\tnote\nsame.eml\tfa\tcomplaint\tutf8\tx\ngroup.eml\tur-Latn\tunethical\tutf8\tx\n' \
	>"$T_TMP/why/labels.tsv"
"$AMENDSCTL" -c "$T_TMP/amends.conf" eval "$T_TMP/why" >"$T_TMP/why.txt"
grep -Eq '^MISS +group.eml .*unethical .*RO_UNETHICAL_CUE_ALTER_2\(\+0\.5, group RO_UNETHICAL_CUE_ALTER counted as RO_UNETHICAL_CUE_ALTER\)' "$T_TMP/why.txt" &&
	grep -Eq '^MISS +same.eml .*complaint .*\(\+[0-9.]+, same text as [A-Z_]+\)' "$T_TMP/why.txt" ||
	{ cat "$T_TMP/why.txt"; fail "eval's miss lines do not say which hit counted"; }
"$AMENDSCTL" -c "$T_TMP/amends.conf" eval --json "$T_TMP/why" >"$T_TMP/why.json"
"$PYTHON3" - "$T_TMP/why.json" <<'PY' || fail "eval --json does not say which hit counted (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
mm = {m["file"]: m for m in d["mismatches"]}
def rules(f, cat):
    return {r["rule"]: r for x in mm[f]["misses"] if x["category"] == cat for r in x["rules"]}
g = rules("group.eml", "unethical")
s = list(rules("same.eml", "complaint").values())
ok = (g["RO_UNETHICAL_CUE_ALTER"]["counted"] and g["RO_UNETHICAL_CUE_ALTER"]["group_counted_as"] is None
      and not g["RO_UNETHICAL_CUE_ALTER_2"]["counted"]
      and g["RO_UNETHICAL_CUE_ALTER_2"]["group_counted_as"] == "RO_UNETHICAL_CUE_ALTER"
      and len(s) >= 2 and sum(r["counted"] for r in s) == 1
      and all(r["same_text_as"] == [c["rule"] for c in s if c["counted"]][0] for r in s if not r["counted"]))
if not ok:
    print(json.dumps(d["mismatches"], ensure_ascii=False, indent=1))
sys.exit(0 if ok else 1)
PY
ok "eval explains a hit that was not counted, in its text and its JSON"

# eval --per-rule (ctl_rulestats.c): what each rule did, on six messages built so that every
# count is known. T_BROKEN decides m1 right and m2 wrong (m2 is no complaint, and without
# "broken" its 0.5 would stay under the threshold); T_JOKE, an exception, holds m4 under the
# threshold (right) and m5 too (wrong: m5 is a complaint); T_NEVER matches nothing. In m6 the two
# rules of group T_G hit and one counts: neither decided it, as the other would stand in.
mkdir -p "$T_TMP/pr/messages" "$T_TMP/pr-rules"
cat >"$T_TMP/pr-rules/t.rules" <<'RULES'
rule T_BROKEN
category complaint
score 1
match /\bbroken\b/

rule T_AGAIN
category complaint
score 0.5
match /\bagain\b/

rule T_LATE
category complaint
score 0.5
match /\blate\b/

rule T_JOKE
category complaint
score -1
match /\bjoking\b/

rule T_NEVER
category refund
score 1
match /\bzzqqxx\b/

rule T_G1
category complaint
score 1
group T_G
match /\bfaulty\b/

rule T_G2
category complaint
score 1
group T_G
match /\bdefective\b/
RULES
pr_msg() {
	printf 'From: c%s@example.org\nTo: s@example.com\nSubject: order\nContent-Type: text/plain; charset=utf-8\n\n%s\n' \
		"$1" "$2" >"$T_TMP/pr/messages/$1.eml"
}
pr_msg m1 "Hello, the lamp you sent me arrived broken. Please tell me what to do."
pr_msg m2 "Hello, your advert is like a broken record, it came again today. Have a nice day."
pr_msg m3 "Hello, the courier was late again this week with my parcel."
pr_msg m4 "Hello, the lamp is broken, just joking, it works and looks lovely."
pr_msg m5 "Hello, the lamp came broken and late, and I am not joking about it."
pr_msg m6 "Hello, the kettle you sold me is faulty and defective."
printf 'file\tlang\tcategories\tencoding\tnote\nm1.eml\ten\tcomplaint\tutf8\tx\nm2.eml\ten\tnone\tutf8\tx\nm3.eml\ten\tcomplaint\tutf8\tx\nm4.eml\ten\tnone\tutf8\tx\nm5.eml\ten\tcomplaint\tutf8\tx\nm6.eml\ten\tcomplaint\tutf8\tx\n' \
	>"$T_TMP/pr/labels.tsv"
"$AMENDSCTL" -c "$T_TMP/amends.conf" eval "$T_TMP/pr" --rules "$T_TMP/pr-rules" --per-rule --json \
	>"$T_TMP/pr.json"
"$PYTHON3" - "$T_TMP/pr.json" <<'PY' || fail "eval --per-rule counts are wrong (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
got = {r["rule"]: [r["hits"], r["on_label"], r["off_label"], r["decided_right"], r["decided_wrong"]]
       for r in d["per_rule"]}
want = {"T_BROKEN": [4, 2, 2, 1, 1], "T_AGAIN": [2, 1, 1, 1, 0], "T_LATE": [2, 2, 0, 1, 0],
        "T_JOKE": [2, 1, 1, 1, 1], "T_G1": [1, 1, 0, 0, 0], "T_G2": [1, 1, 0, 0, 0]}
order = [r["rule"] for r in d["per_rule"]]
ok = (got == want and d["never_matched"] == ["T_NEVER"] and d["messages"] == 6
      and order[:2] == ["T_BROKEN", "T_JOKE"])
if not ok:
    print(json.dumps({"got": got, "order": order, "never": d["never_matched"]}, indent=1))
sys.exit(0 if ok else 1)
PY
"$AMENDSCTL" -c "$T_TMP/amends.conf" eval "$T_TMP/pr" --rules "$T_TMP/pr-rules" --per-rule >"$T_TMP/pr.txt"
grep -Eq '^  T_BROKEN +complaint +\+1 +4 +2 +2 +1 +1$' "$T_TMP/pr.txt" &&
	grep -Eq '^rules that matched no message \(1\):$' "$T_TMP/pr.txt" &&
	grep -Eq '^  T_NEVER$' "$T_TMP/pr.txt" ||
	{ cat "$T_TMP/pr.txt"; fail "eval --per-rule text table"; }
ok "eval --per-rule: hits, labels and the verdicts each rule decided, right and wrong"

# check --rules DIR runs DIR's rules, not the configuration's: m3 hits T_AGAIN and T_LATE
# (0.5 each, a complaint) only through pr-rules; the shipped rules give it their own names.
# --rules without a directory is a usage error.
"$AMENDSCTL" -c "$T_TMP/amends.conf" check --rules "$T_TMP/pr-rules" "$T_TMP/pr/messages/m3.eml" \
	>"$T_TMP/check-rules.txt" 2>&1 || { cat "$T_TMP/check-rules.txt"; fail "check --rules DIR failed"; }
assert_grep '^X-Amends-Rules: T_AGAIN,T_LATE$' "$T_TMP/check-rules.txt" "check --rules DIR: m3 by pr-rules' T_AGAIN and T_LATE"
"$AMENDSCTL" -c "$T_TMP/amends.conf" check "$T_TMP/pr/messages/m3.eml" >"$T_TMP/check-shipped.txt" 2>&1
if grep -q 'T_AGAIN' "$T_TMP/check-shipped.txt"; then
	fail "check without --rules ran pr-rules"
fi
"$AMENDSCTL" -c "$T_TMP/amends.conf" check "$T_TMP/pr/messages/m3.eml" --rules >"$T_TMP/check-usage.txt" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q 'usage: amendsctl check \[--json\] \[--rules DIR\] FILE' "$T_TMP/check-usage.txt" ||
	fail "check with --rules and no directory: exit $rc, $(cat "$T_TMP/check-usage.txt")"
ok "check --rules DIR checks with DIR's rules; --rules without DIR is a usage error"
