#!/usr/bin/env python3
"""summary.py - medians, ratios and the issue-7 targets from run.sh's raw TSV

Usage: summary.py bench-results.tsv      prints Markdown (pasted into RESULTS.md as is)

Ratios are taken inside each round, between runs that followed each other on the same
machine load, and the median over rounds is reported. Peak RSS is the largest of the rounds.
"""
import csv
import statistics
import sys
from collections import defaultdict


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: summary.py FILE.tsv\n")
        return 2
    rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8"), delimiter="\t"))
    by_round = defaultdict(dict)
    by_var = defaultdict(list)
    for r in rows:
        for k in ("msgs", "rate", "p50_ms", "p99_ms", "max_ms", "mean_ms", "cpu_ms_per_msg",
                  "hwm_kib", "drafts", "budget_stops"):
            r[k] = float(r[k])
        by_round[r["round"]][r["variant"]] = r
        by_var[r["variant"]].append(r)

    def ratio(v, key, base="null", inverse=False):
        xs = []
        for rnd in by_round.values():
            if v in rnd and base in rnd and rnd[base][key] and rnd[v][key]:
                a, b = rnd[v][key], rnd[base][key]
                xs.append(b / a if inverse else a / b)
        return med(xs)

    def added_p99(v):
        return med([rnd[v]["p99_ms"] - rnd["null"]["p99_ms"] for rnd in by_round.values()
                    if v in rnd and "null" in rnd])

    print("| server | msg/s | p50 ms | p99 ms | max ms | server CPU ms/msg | peak RSS MiB "
          "| drafts | budget stops | msg/s vs null | added p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, rs in by_var.items():
        vs_null = "" if v == "null" else "%.3f" % ratio(v, "rate")
        add = "" if v == "null" else "%.2f" % added_p99(v)
        print("| %s | %.0f | %.2f | %.2f | %.1f | %.3f | %.1f | %.0f | %.0f | %s | %s |" % (
            v, med([r["rate"] for r in rs]), med([r["p50_ms"] for r in rs]),
            med([r["p99_ms"] for r in rs]), med([r["max_ms"] for r in rs]),
            med([r["cpu_ms_per_msg"] for r in rs]), max(r["hwm_kib"] for r in rs) / 1024,
            med([r["drafts"] for r in rs]), med([r["budget_stops"] for r in rs]), vs_null, add))
    print("\n(medians over %d round(s); ratios within each round, then the median)\n"
          % len(by_round))

    gens = sorted((int(v[4:]) for v in by_var if v.startswith("gen-")))
    if gens:
        lo, hi = gens[0], gens[-1]
        print("Rule sweep, relative to %d rules (per message: server CPU, and wall time = 1/rate):"
              % lo)
        for n in gens:
            print("- %d rules: CPU %.2fx, wall %.2fx" % (
                n, ratio("gen-%d" % n, "cpu_ms_per_msg", "gen-%d" % lo),
                ratio("gen-%d" % n, "rate", "gen-%d" % lo, inverse=True)))
        print()

    print("Targets (issue 7):")
    checks = []
    at300 = [n for n in gens if n >= 300]
    if at300 and "null" in by_var:
        worst = min(ratio("gen-%d" % n, "rate") for n in at300)
        checks.append(("amends with >= 300 rules >= 0.7x null msg/s", worst >= 0.7,
                       "%.3fx" % worst))
    if len(gens) > 1:
        c = ratio("gen-%d" % gens[-1], "cpu_ms_per_msg", "gen-%d" % gens[0])
        w = ratio("gen-%d" % gens[-1], "rate", "gen-%d" % gens[0], inverse=True)
        checks.append(("%d rules <= 1.5x the time of %d per message" % (gens[-1], gens[0]),
                       max(c, w) <= 1.5, "CPU %.2fx, wall %.2fx" % (c, w)))
    if "amends" in by_var and "null" in by_var:
        a = added_p99("amends")
        checks.append(("p99 added latency <= 2 ms (amends - null)", a <= 2.0, "%.2f ms" % a))
    amends_vars = [v for v in by_var if v != "null"]
    if amends_vars:
        peak = max(r["hwm_kib"] for v in amends_vars for r in by_var[v]) / 1024
        checks.append(("peak RSS <= 64 MiB", peak <= 64, "%.1f MiB" % peak))
    for what, ok, val in checks:
        print("- %s: %s (%s)" % (what, "MET" if ok else "NOT MET", val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
