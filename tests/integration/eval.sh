#!/bin/sh
# eval.sh - the shipped rules meet the issue-6 targets on the dev corpus, measured by
# `amendsctl eval` through the real pipeline: macro-F1 >= 0.90 for en ur pa fa hi, >= 0.80 for
# ur-Latn and hi-Latn, false positives on `none` <= 5 %, language detection >= 98 %; and every
# category of the held-out sets in tests/data/heldout* right.
# Also checks that eval can fail: with no rules the same targets must be reported as missed.
# Exit 77 (skip) when the shared corpus is missing.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
corpus="$top_srcdir/../shared/corpus/dev"
ctl="$top_builddir/src/amendsctl"
conf="$top_srcdir/conf/amends.conf"

if [ ! -f "$corpus/labels.tsv" ]; then
	echo "SKIP: shared corpus not found at $corpus"
	exit 77
fi
if [ ! -x "$ctl" ]; then
	echo "FAIL: $ctl not built"
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/amends-eval.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

targets="--min-f1 0.90 --min-f1-latn 0.80 --max-fp 0.05 --min-lang 0.98"

# shellcheck disable=SC2086
"$ctl" -c "$conf" eval "$corpus" --rules "$top_srcdir/rules" $targets >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: amendsctl eval exit $rc (a target was missed or the run failed)"
	cat "$tmp/err"
	exit 1
fi
grep -q '^targets: met' "$tmp/out" || { echo "FAIL: no 'targets: met' line"; exit 1; }

# The JSON document must say the same.
# shellcheck disable=SC2086
"$ctl" -c "$conf" eval "$corpus" --rules "$top_srcdir/rules" --json $targets >"$tmp/json" 2>>"$tmp/err" ||
	{ echo "FAIL: eval --json exit $?"; exit 1; }
grep -q '"passed":true' "$tmp/json" || { echo "FAIL: --json does not report passed:true"; exit 1; }

# held_eval SET WHAT TARGETS... - eval tests/data/SET against TARGETS; on a miss print it all
# and fail with WHAT, else print the summary lines (and the misses left, LANG ones).
held_eval() {
	held=$1 what=$2
	shift 2
	"$ctl" -c "$conf" eval "$top_srcdir/tests/data/$held" --rules "$top_srcdir/rules" "$@" \
		>"$tmp/held" 2>&1 || {
		cat "$tmp/held"
		echo "FAIL: the held-out set $held: $what"
		exit 1
	}
	echo "held-out set $held:"
	sed -n '/^| \*\*all/p;/^false positives/p;/^language/p;/^misses/,$p' "$tmp/held"
}

# tests/data/heldout to heldout4 and heldout6: mail written apart from the dev corpus the rules
# were tuned on, each set by a writer who had not seen the rules (tests/data/README.md). heldout
# (116): English hard negatives with the words roman.rules shares with English ("missing",
# "complaints", "lawyer"), everyday requests and thanks in the seven languages, plain complaints,
# refunds and cancellations. heldout2 (135): every category in every language, a quarter with two,
# loanwords in native script ("account بند کر دیں"), the encodings of the dev corpus, hard
# negatives in all seven (refund-policy questions, a complaint about a third party, a quoted old
# complaint). heldout3 (131): the same mix from other trades (airline, bank, utility, gym, hotel,
# insurer); heldout4 (129): pharmacy, ride-hailing, wallet, tuition, repairs, travel, cable TV,
# bakery, with complaints told by their facts and services stopped ("take him off the register");
# heldout6 (144, written after heldout5): unethical requests of every kind, refunds,
# cancellations. Each found misses and false hits when first run (README.md, "How good the shipped
# rules are"), each after the fixes for the one before; now no miss and no false hit is allowed in
# any. Language: 90 % (romanized Urdu with few markers is called Hinglish; see amends.conf(5),
# fallback_hi_latn).
# heldout8 (150) and heldout10 (160), written in the fourteenth session to tune on: unethical
# requests told by their facts with honest look-alikes, and complaints and cancellations told by
# their facts (weighted to hi, hi-Latn, pa, fa); first runs: unethical F1 0.26, complaint 0.45.
for name in heldout heldout2 heldout3 heldout4 heldout6 heldout8 heldout10; do
	held_eval "$name" "a miss or a false hit (or language below 90 %)" \
		--min-f1 1 --min-f1-latn 1 --max-fp 0 --min-lang 0.90
done

# heldout12 (160), written in the sixteenth session to tune on: complaints told by their facts
# (nine per language, none with the word "complaint"), cancellations and unethical requests told
# by their facts, hard negatives in the same situations. First run: complaint 0.54, abuse 1.00,
# cancellation 0.69, refund 0.81, unethical 0.55, 2 of 41 hard negatives flagged. After the
# fixes every category is right but one Persian message labelled unethical only, whose "the visa
# still hasn't come" (هنوز نیومده) is also a complaint cue, which the rules keep.
held_eval heldout12 "a miss or a false hit beyond the one known" \
	--min-f1 0.99 --min-f1-latn 1 --max-fp 0 --min-lang 1 --min-cat-f1 complaint=0.99

# heldout13 (147), written in the nineteenth session to tune on: complaints told by their facts
# in 24 more trades (tailors, plumbers, opticians, tiffin services, hostels, parking, hospital
# billing, ...), eleven per language, none with the word for complaint, "disappointed" or
# "unacceptable"; a cancellation, a refund and an unethical request or abuse per language; hard
# negatives in the same situations (fixed with thanks, "I dropped it, repair it for a fee", an
# announced delay). First run: complaint 0.46, abuse 1.00, cancellation 0.44, refund 0.73,
# unethical 0.57, 6 of 46 hard negatives flagged. After the fixes (77 rules more, 368 in all:
# general weak cues that add up, such as "was told each time", "took the day off", damage
# named by the part, "had to do it myself", "it used to be fine", and negatives for the
# customer's own fault and a fault fixed with thanks) every category is right. Language:
# 146 of 147 (one romanized Urdu message called Hinglish).
held_eval heldout13 "a miss or a false hit (or language below 90 %)" \
	--min-f1 1 --min-f1-latn 1 --max-fp 0 --min-lang 0.90

# tests/data/heldout5 (140), heldout7 (140), heldout9 (140), heldout11 (150) and heldout14 (140)
# are never tuned on: they are the
# measures of mail the rules were not written for. Each is held to its
# figures as first measured: per-language macro-F1, false hits on `none`, language detection,
# and each category's F1 over all languages pooled (--min-cat-f1), because a macro-F1 per
# language can hide one category collapsing. heldout5's first run: macro-F1 0.65 (pa) to 0.87
# (en), romanized 0.66 / 0.84, 2 of 49 hard negatives flagged, language 137 of 140. The floors
# were raised with the heldout8/heldout10 rules (complaint 0.77 -> 0.82, cancellation 0.78 ->
# 0.81, unethical 0.57 -> 0.70, 1 of 49 flagged; macro-F1 0.75 (fa) to 0.94 (en), romanized
# 0.68 / 0.84). Language 138 of 140 with the romanized-Urdu spelling cues (lang.c). Complaint
# 0.84 with the heldout12 rules.
held_eval heldout5 "worse than its last measurement (untuned: do not fix it by tuning on it)" \
	--min-f1 0.74 --min-f1-latn 0.67 --max-fp 0.03 --min-lang 0.98 \
	--min-cat-f1 complaint=0.83 --min-cat-f1 abuse=1 --min-cat-f1 cancellation=0.80 \
	--min-cat-f1 refund=0.78 --min-cat-f1 unethical=0.69

# heldout7: written last, with the rules of heldout6's fixes. Its first run: macro-F1 0.75 (pa)
# to 0.86 (hi), romanized 0.75 / 0.84, 5 of 45 hard negatives flagged, language 133 of 140 (6
# romanized Urdu messages called Hinglish); complaint 0.77, abuse 0.96, cancellation 0.86,
# refund 0.92, unethical 0.62. With the heldout8/heldout10 rules: complaint 0.81, 4 of 45
# flagged, non-romanized macro-F1 0.77 to 0.86; but unethical 0.60 and romanized Urdu 0.72
# (was 0.75): one romanized inflated-invoice request was found by a strong roman.rules
# alternative ("bill ... bana ... claim") that was removed because it flagged honest invoices
# made out to an employer; the weak cues find only one cue in it. Those two floors were LOWERED
# to the new figures, knowingly (NEWS). Language 136 of 140 with the romanized-Urdu spelling
# cues (lang.c: "-ay" for ے, "q" for ق; 3 romanized Urdu messages still called Hinglish).
held_eval heldout7 "worse than its last measurement (untuned: do not fix it by tuning on it)" \
	--min-f1 0.77 --min-f1-latn 0.72 --max-fp 0.09 --min-lang 0.97 \
	--min-cat-f1 complaint=0.80 --min-cat-f1 abuse=0.96 --min-cat-f1 cancellation=0.86 \
	--min-cat-f1 refund=0.92 --min-cat-f1 unethical=0.60

# heldout9 (140): written at the start of the fourteenth session by a writer who saw neither the
# rules nor the other held-out sets: dentists, coaching centres, solar installers, mobile-repair
# kiosks, groceries, buses, matrimonial sites, printers, laundries, pet shops, co-working,
# electricity, bookshops, cinemas, car rental. Never tuned on. Its first run (the rules after the
# heldout6 fixes, with the one-stretch-counts-once verdict): macro-F1 0.61 (hi) to 0.82 (en),
# romanized 0.73 (hi-Latn) / 0.84, 1 of 42 none flagged, language 137 of 140; complaint 0.61,
# abuse 0.96, cancellation 0.68, refund 0.88, unethical 0.70. With the heldout8/heldout10
# rules: complaint 0.72, cancellation 0.72, unethical 0.75; macro-F1 0.68 (hi) to 0.85 (pa),
# romanized 0.80 / 0.84; still 1 of 42 flagged. Language 136 of 140 with the romanized-Urdu
# spelling cues (137 before: one more romanized Urdu message found, one Hinglish one lost; not
# looked into, as that would be tuning on it). Complaint 0.75 with the heldout12 rules, 0.77 with
# the heldout13 rules.
held_eval heldout9 "worse than its last measurement (untuned: do not fix it by tuning on it)" \
	--min-f1 0.68 --min-f1-latn 0.80 --max-fp 0.03 --min-lang 0.97 \
	--min-cat-f1 complaint=0.76 --min-cat-f1 abuse=0.96 --min-cat-f1 cancellation=0.71 \
	--min-cat-f1 refund=0.87 --min-cat-f1 unethical=0.74

# heldout11 (150): written at the start of the sixteenth session by a writer who saw neither the
# rules nor the other held-out sets: vet clinics, wedding photographers, solar installers, car
# rental, movers, dentists, furniture, online courses, pest control, school vans, landlords,
# event tickets, phone repair, grocery apps, water purifiers, driving schools. Never tuned on.
# Its first run (the rules with groups and the romanized-Urdu spelling cues): macro-F1 0.53 (hi)
# to 0.77 (pa), romanized 0.63 (ur-Latn) / 0.68, 3 of 45 none flagged, language 148 of 150;
# complaint 0.49, abuse 0.90, cancellation 0.63, refund 0.81, unethical 0.60. Complaints told by
# their facts are what the rules find least. The heldout12 rules moved nothing here; with the
# heldout13 rules complaint 0.54 and Hindi's macro-F1 0.57 (nothing else moved).
held_eval heldout11 "worse than its last measurement (untuned: do not fix it by tuning on it)" \
	--min-f1 0.56 --min-f1-latn 0.63 --max-fp 0.07 --min-lang 0.98 \
	--min-cat-f1 complaint=0.53 --min-cat-f1 abuse=0.89 --min-cat-f1 cancellation=0.63 \
	--min-cat-f1 refund=0.81 --min-cat-f1 unethical=0.59

# heldout14 (140): written in the nineteenth session, beside heldout13, by a writer who saw
# neither the rules nor the other sets: school fee offices, admissions, hospitals and labs,
# insurance claims, marketplaces, airlines, railways, broadband, card desks, microfinance,
# dealerships, property management, photo studios, ... Never tuned on. Its first run (the
# heldout12 rules, 291): macro-F1 0.69 (en, fa) to 0.79 (hi), romanized 0.75 (ur-Latn) / 0.74,
# 2 of 49 none flagged, language 135 of 140 (5 romanized Urdu messages called Hinglish);
# complaint 0.57, abuse 1.00, cancellation 0.73, refund 0.79, unethical 0.67. With the heldout13
# rules: refund 0.82, romanized Urdu 0.79; nothing else moved.
held_eval heldout14 "worse than its last measurement (untuned: do not fix it by tuning on it)" \
	--min-f1 0.69 --min-f1-latn 0.73 --max-fp 0.05 --min-lang 0.96 \
	--min-cat-f1 complaint=0.56 --min-cat-f1 abuse=1 --min-cat-f1 cancellation=0.72 \
	--min-cat-f1 refund=0.81 --min-cat-f1 unethical=0.66

# A category floor can fail: heldout5's unethical F1 (0.70) under a floor of 0.71 is a miss
# named in the output, and a category the configuration lacks is a usage error.
"$ctl" -c "$conf" eval "$top_srcdir/tests/data/heldout5" --rules "$top_srcdir/rules" \
	--min-cat-f1 unethical=0.71 >"$tmp/floor" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q '^unethical F1 (all languages) 0.696 < 0.71' "$tmp/floor" || {
	tail -5 "$tmp/floor"
	echo "FAIL: a category floor above the figure did not fail (exit $rc)"
	exit 1
}
"$ctl" -c "$conf" eval "$top_srcdir/tests/data/heldout5" --min-cat-f1 praise=0.5 >"$tmp/floor" 2>&1
rc=$?
[ "$rc" = 2 ] || { echo "FAIL: --min-cat-f1 with an unknown category: exit $rc, not 2"; exit 1; }

# With an empty rule set every category is missed: eval must exit 1.
mkdir "$tmp/norules"
# shellcheck disable=SC2086
if "$ctl" -c "$conf" eval "$corpus" --rules "$tmp/norules" $targets >"$tmp/out2" 2>&1; then
	echo "FAIL: eval with no rules met the targets"
	exit 1
fi
echo "PASS"
exit 0
