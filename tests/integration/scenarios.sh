#!/bin/bash
# scenarios.sh - acceptance of issues 4 and 5: every dev scenario through the REAL daemon
#
# Replays ../shared/corpus/dev/scenarios/*/NN.eml in order through amends-milter running the
# shipped configuration, rules and templates, with scenarios/longstanding.txt as the
# long-standing list and the clock advanced one day per message; first on SQLite, then on a real
# redis-server (127.0.0.1, free port, no persistence; only this half is skipped when Redis is not
# installed). After each message it checks:
#   - the answer is CONTINUE and there is exactly one X-Amends-Status;
#   - its categories equal expect.tsv's categories                         [rules]
#   - X-Amends-Tally equals the sender's running sum of the categories the daemon reported
#     (so a tally bug is told apart from a rule miss)                       [tally]
#   - X-Amends-Draft equals the draft column (absent for "-")              [policy]
#   - the Maildir .Drafts/cur gained exactly one file for a draft, none otherwise; that file has
#     X-Amends-Draft-Kind = the kind, Content-Language = the customer's language (romanized
#     Urdu/Hindi -> ur/hi, the shipped fallbacks), In-Reply-To = the message's Message-ID, and its
#     body is signed by that language's agent from the config              [draft]
# and at the end that tmp/ and new/ are empty. Every failing row is listed (with its class in
# brackets) before the test fails; nothing is relaxed for rows the rules get wrong.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

need_built
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"
[ -d "$SCENARIOS" ] || skip "the scenario corpus is not at $SCENARIOS"
command -v python3 >/dev/null || skip "python3 is needed to read sources.json and the drafts"

PLAN="$T_TMP/plan.tsv"
FAILS="$T_TMP/failures"
: >"$FAILS"

# The plan: one row per message, in order:
#   scenario file sender envfrom(- = default, <> for a null sender) lang msgid categories draft
# lang is the source's language with the shipped fallbacks applied (ur-Latn -> ur, hi-Latn -> hi).
python3 - "$SCENARIOS" "$SHARED_DIR/corpus/dev/tools/sources.json" >"$PLAN" <<'PY' ||
import email, email.policy, json, os, sys
root, sources = sys.argv[1], sys.argv[2]
langs = {}
for s in json.load(open(sources, encoding="utf-8"))["scenarios"]:
    for m in s["messages"]:
        langs[m["id"]] = m["lang"]
fallback = {"ur-Latn": "ur", "hi-Latn": "hi"}
for scen in sorted(os.listdir(root)):
    d = os.path.join(root, scen)
    if not os.path.isfile(os.path.join(d, "expect.tsv")):
        continue
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "expect.tsv"), encoding="utf-8")]
    assert rows[0] == ["file", "categories", "draft"], rows[0]
    for f, cats, draft in rows[1:]:
        m = email.message_from_binary_file(open(os.path.join(d, f), "rb"), policy=email.policy.default)
        sender = m["From"].addresses[0].addr_spec.lower()
        rp = str(m.get("Return-Path", "")).strip()
        env = "<>" if rp == "<>" else "-"
        lang = langs[scen + "/" + f[:-4]]
        print("\t".join([scen, f, sender, env, fallback.get(lang, lang),
                         str(m["Message-ID"]).strip(), cats, draft]))
PY
	fail "cannot build the plan from $SCENARIOS"
[ "$(wc -l <"$PLAN")" -ge 15 ] || fail "the plan has too few messages: $(wc -l <"$PLAN")"

CATS_ORDER="complaint abuse cancellation refund unethical"

# row_fail BACKEND SCEN FILE CLASS TEXT
row_fail() {
	printf '%s %s/%s [%s] %s\n' "$1" "$2" "$3" "$4" "$5" >>"$FAILS"
	echo "not ok - $1 $2/$3 [$4] $5"
}

# wait_new_drafts DIR BEFORE_FILE N - until DIR holds N files not in BEFORE_FILE (3 s at most: a
# draft over the EOM budget is finished by the writer thread after the answer).
new_drafts() { comm -13 "$2" <(acc_cur_list "$1"); }
wait_new_drafts() {
	local i
	for ((i = 0; i < 150; i++)); do
		[ "$(new_drafts "$1" "$2" | wc -l)" -ge "$3" ] && return 0
		sleep 0.02
	done
	return 1
}

# run_backend NAME STORE - the whole plan through one daemon on STORE.
run_backend() {
	local be=$1 store=$2
	local state="$T_TMP/$be" conf="$T_TMP/$be.conf" sock="unix:$T_TMP/$be.sock"
	local cur="$T_TMP/$be/Maildir/.Drafts/cur" md="$T_TMP/$be/Maildir/.Drafts"
	local scen file sender env lang msgid want_cats want_draft
	local out got_status got_cats got_draft got_tally want_tally n_status answer c
	local drafts_total=0 rows=0 bad_before i want nl
	local -a draft_rows=() draft_files=() infos=()
	local -A tally=()

	bad_before=$(wc -l <"$FAILS")
	acc_config "$conf" state="$state" store="$store" longstanding="$SCENARIOS/longstanding.txt"
	start_daemon "$conf" "$sock"
	while IFS=$'\t' read -r scen file sender env lang msgid want_cats want_draft; do
		rows=$((rows + 1))
		acc_clock_days 1
		out="$T_TMP/$be.$scen.$file.out"
		acc_cur_list "$cur" >"$T_TMP/before"
		local -a fopt=()
		[ "$env" != - ] && fopt=(-f "$env")
		run_client "$out" -t 10 -s "$sock" "${fopt[@]}" "$SCENARIOS/$scen/$file" </dev/null
		acc_transcript "$out"
		answer=$ACC_T_ANSWER
		[ "$answer" = CONTINUE ] || row_fail "$be" "$scen" "$file" milter "answer '$answer', want CONTINUE"
		got_status=${ACC_T_ADD[X-Amends-Status]:-}
		n_status=0
		if [ -n "${ACC_T_ADD[X-Amends-Status]+set}" ]; then
			nl=${got_status//[!$'\n']/}
			n_status=$((${#nl} + 1))
		fi
		got_status=${got_status%%$'\n'*}
		[ "$n_status" = 1 ] || row_fail "$be" "$scen" "$file" milter "$n_status X-Amends-Status headers"
		acc_status_categories_v "$got_status"
		got_cats=$REPLY
		got_draft=${ACC_T_ADD[X-Amends-Draft]:-}
		got_draft=${got_draft//$'\n'/,}
		got_tally=${ACC_T_ADD[X-Amends-Tally]:-}
		got_tally=${got_tally//$'\n'/,}
		[ -n "$got_draft" ] || got_draft=-

		[ "$got_cats" = "$want_cats" ] ||
			row_fail "$be" "$scen" "$file" rules "categories '$got_cats', want '$want_cats' (rules: ${ACC_T_ADD[X-Amends-Rules]:-})"

		# The tally the store should hold: this sender's running sum of what was reported.
		if [ "$got_cats" != none ] && [ "$got_cats" != "?" ]; then
			for c in ${got_cats//,/ }; do
				tally[$sender.$c]=$((${tally[$sender.$c]:-0} + 1))
			done
		fi
		want_tally=""
		for c in $CATS_ORDER; do
			[ "${tally[$sender.$c]:-0}" -gt 0 ] &&
				want_tally="${want_tally:+$want_tally; }$c=${tally[$sender.$c]}"
		done
		[ "$got_tally" = "$want_tally" ] ||
			row_fail "$be" "$scen" "$file" tally "X-Amends-Tally '$got_tally', want '$want_tally'"

		[ "$got_draft" = "$want_draft" ] ||
			row_fail "$be" "$scen" "$file" policy "X-Amends-Draft '$got_draft', want '$want_draft' (categories '$got_cats')"

		# The Maildir: one new draft when the daemon said so, none otherwise.
		local want_files=0 new n_new info
		[ "$got_draft" != - ] && want_files=1
		[ "$want_files" = 1 ] && wait_new_drafts "$cur" "$T_TMP/before" 1
		new=$(new_drafts "$cur" "$T_TMP/before")
		n_new=$(printf '%s' "$new" | grep -c .)
		drafts_total=$((drafts_total + n_new))
		if [ "$n_new" != "$want_files" ]; then
			row_fail "$be" "$scen" "$file" draft "$n_new new draft files in cur/ (${new//$'\n'/ }), want $want_files"
		elif [ "$n_new" = 1 ]; then
			case $new in
			*:2,*D*) ;;
			*) row_fail "$be" "$scen" "$file" draft "draft $new lacks the D flag" ;;
			esac
			# read with the others after the run: one python for them all
			draft_rows+=("$scen	$file	$got_draft	$lang	$msgid	signed")
			draft_files+=("$cur/$new")
		fi
		[ -z "${VERBOSE:-}" ] || echo "# $be $scen/$file: $got_cats draft=$got_draft tally='$got_tally'"
	done <"$PLAN"
	stop_daemon

	# Each draft: kind, language, In-Reply-To and signature as the row wants.
	if [ "${#draft_files[@]}" -gt 0 ]; then
		mapfile -t infos < <(acc_draft_infos "$conf" "${draft_files[@]}")
		[ "${#infos[@]}" = "${#draft_files[@]}" ] ||
			row_fail "$be" all - draft "read ${#infos[@]} of ${#draft_files[@]} drafts"
		for ((i = 0; i < ${#draft_files[@]}; i++)); do
			IFS=$'\t' read -r scen file want <<<"${draft_rows[i]}"   # want: the rest, tabs kept
			[ "${infos[i]:-}" = "$want" ] ||
				row_fail "$be" "$scen" "$file" draft "draft says '${infos[i]//$'\t'/ }', want '${want//$'\t'/ }'"
		done
	fi

	# Nothing half-written anywhere, and no draft arrived late.
	[ -z "$(acc_cur_list "$md/tmp")" ] || row_fail "$be" all - draft "files left in tmp/: $(acc_cur_list "$md/tmp" | head -3)"
	[ -z "$(acc_cur_list "$md/new")" ] || row_fail "$be" all - draft "files in new/: $(acc_cur_list "$md/new" | head -3)"
	[ "$(acc_cur_list "$cur" | grep -c .)" = "$drafts_total" ] ||
		row_fail "$be" all - draft "cur/ holds $(acc_cur_list "$cur" | grep -c .) drafts, $drafts_total were seen arriving"
	if [ "$(wc -l <"$FAILS")" = "$bad_before" ]; then
		ok "$be: $rows messages of every scenario give exactly expect.tsv, the tally and the drafts"
	else
		t_note "$be: $(($(wc -l <"$FAILS") - bad_before)) failed checks over $rows messages"
	fi
}

acc_clock_init
run_backend sqlite "sqlite:$T_TMP/sqlite/tally.db"

redis_skipped=""
if acc_have_redis; then
	acc_redis_start
	run_backend redis "redis:127.0.0.1:$ACC_REDIS_PORT"
	acc_redis_stop
else
	redis_skipped="redis-server/redis-cli not installed: the Redis half was skipped"
	t_note "SKIP part: $redis_skipped"
fi

if [ -s "$FAILS" ]; then
	echo "---- failing scenario rows (backend scenario/file [class] what) ----" >&2
	cat "$FAILS" >&2
	fail "$(wc -l <"$FAILS") scenario checks failed"
fi
[ -z "$redis_skipped" ] || echo "note: $redis_skipped"
exit 0
