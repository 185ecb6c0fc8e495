#!/usr/bin/env python3
"""summary.py - medians, ratios and the issue-7 targets from run.sh's raw TSV

Usage: summary.py bench-results.tsv      prints Markdown (pasted into RESULTS.md as is)

Ratios are taken inside each round, between runs that followed each other on the same
machine load, and the median over rounds is reported. Peak RSS is the largest of the rounds.

Rows with mode "rate" come from the fixed-rate (open-loop) latency phase: null-rate and
amends-rate at the same offered msg/s. Their "p99 added latency" is amends p99 - null p99 within
a round, median over rounds. It is a difference of two tails, not the tail of per-message
differences: the two servers ran one after the other, so no message was timed on both under the
same conditions, and percentiles do not subtract (p99(a) - p99(b) != p99(a - b)).
"""
import csv
import statistics
import sys
from collections import defaultdict


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def print_fixed(fixed, by_round):
    """The fixed-rate table; returns (median added p99, offered rate, missed) or None."""
    if not fixed:
        return None
    arrivals = sorted({r.get("arrivals") or "?" for rs in fixed.values() for r in rs})
    print("Fixed rate (open loop, %s arrivals at the offered rate over the same connections; "
          "latency from each message's scheduled arrival to the reply at EOM):\n"
          % "/".join(arrivals))
    print("| server | offered msg/s | msg/s | p50 ms | p99 ms | max ms | lag p99 ms | missed "
          "| server CPU ms/msg | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, rs in fixed.items():
        print("| %s | %.0f | %.0f | %.2f | %.2f | %.1f | %.2f | %.0f | %.3f | %.1f |" % (
            v, med([r["offered"] for r in rs]), med([r["rate"] for r in rs]),
            med([r["p50_ms"] for r in rs]), med([r["p99_ms"] for r in rs]),
            med([r["max_ms"] for r in rs]), med([r["lag_p99_ms"] for r in rs]),
            sum(r["missed"] for r in rs), med([r["cpu_ms_per_msg"] for r in rs]),
            max(r["hwm_kib"] for r in rs) / 1024))
    if "amends-rate" not in fixed or "null-rate" not in fixed:
        print()
        return None
    pairs = [(rnd["amends-rate"], rnd["null-rate"]) for rnd in by_round.values()
             if "amends-rate" in rnd and "null-rate" in rnd]
    diffs = [a["p99_ms"] - n["p99_ms"] for a, n in pairs]
    missed = sum(a["missed"] + n["missed"] for a, n in pairs)
    rate = med([a["offered"] for a, _ in pairs])
    print("\np99 added latency at %.0f msg/s (amends p99 - null p99 within each round, median): "
          "**%.2f ms** (rounds: %s)" % (rate, med(diffs), ", ".join("%.2f" % d for d in diffs)))
    normal = [rnd["amends-normal-rate"]["p99_ms"] - rnd["null-rate"]["p99_ms"]
              for rnd in by_round.values() if "amends-normal-rate" in rnd and "null-rate" in rnd]
    if normal:
        print("The same with sqlite_synchronous=normal (no fsync per tally commit): %.2f ms "
              "(rounds: %s)" % (med(normal), ", ".join("%.2f" % d for d in normal)))
    print("This is a difference of two tails, not the p99 of per-message differences: the "
          "servers ran one after the other, so no message was timed on both.")
    if missed:
        print("**%d arrivals were missed: the offered rate was not sustained and these latencies "
              "are a lower bound.**" % missed)
    print()
    return med(diffs), rate, missed


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: summary.py FILE.tsv\n")
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by_round = defaultdict(dict)
    by_var = defaultdict(list)
    fixed = defaultdict(list)          # the fixed-rate phase, by variant
    for r in rows:
        for k in ("msgs", "rate", "p50_ms", "p99_ms", "max_ms", "mean_ms", "cpu_ms_per_msg",
                  "hwm_kib", "drafts", "budget_stops", "offered", "missed", "lag_p99_ms"):
            r[k] = float(r.get(k) or 0)    # TSVs before the latency phase lack the last ones
        by_round[r["round"]][r["variant"]] = r
        if r.get("mode") == "rate":
            fixed[r["variant"]].append(r)
        else:
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

    if by_var:
        print("Closed loop (each connection sends its next message when the last is answered: "
              "saturation; latency is mostly queueing):\n")
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
    if by_var:
        print("\n(medians over %d round(s); ratios within each round, then the median)\n"
              % len(by_round))
    fixed_added = print_fixed(fixed, by_round)

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
    if fixed_added is not None:
        a, rate, missed = fixed_added
        what = "p99 added latency <= 2 ms (amends - null at %.0f msg/s)" % rate
        if missed:
            checks.append((what, False, "not measured: %d arrivals missed, the rate was not "
                           "sustained" % missed))
        else:
            checks.append((what, a <= 2.0, "%.2f ms" % a))
    elif "amends" in by_var and "null" in by_var:
        a = added_p99("amends")
        checks.append(("p99 added latency <= 2 ms (amends - null, at saturation: queueing)",
                       a <= 2.0, "%.2f ms" % a))
    amends_vars = [v for v in by_var if v != "null"]
    if amends_vars:
        peak = max(r["hwm_kib"] for v in amends_vars for r in by_var[v]) / 1024
        checks.append(("peak RSS <= 64 MiB", peak <= 64, "%.1f MiB" % peak))
    for what, ok, val in checks:
        print("- %s: %s (%s)" % (what, "MET" if ok else "NOT MET", val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
