#!/usr/bin/env python3
"""gen_rules.py - N generated rules of the shape the shipped packs use, for the rule-count sweep

Usage: gen_rules.py N OUTDIR     writes OUTDIR/gen_<lang>.rules (N rules in all), deterministic.

Each rule is what rules/README.md asks for: an alternation of cue words, a short bounded gap,
a second alternation, in one of the five scripts (Latin: English and romanized Urdu/Hindi;
Arabic: Urdu/Persian; Gurmukhi; Devanagari), e.g.
    /\\b(?:refund|money|charge)\\s+(?:\\w+\\s+){0,2}?(?:back|today|waive)\\b/
    /(?:پیسے|رقم)\\s+(?:\\S+\\s+){0,4}?(?:واپس|فوری)/
    /(?<![\\p{L}\\p{M}])(?:पैसे|बिल)\\s+(?:\\S+\\s+){0,4}?(?:वापस|रद्द)(?![\\p{L}\\p{M}])/
Some rules are single alternations of 8-20 words (like the shipped "word" rules), some are
weak (0.5) and some negative (exceptions), as in the packs. The same N always gives the same
rules: the sweep compares rule counts, not luck.
"""
import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vocab import WORDS  # noqa: E402

LANGS = ["en", "ro", "ar", "pa", "hi"]
CATEGORIES = ["complaint", "abuse", "cancellation", "refund", "unethical"]


def alternation(rng, words, lo, hi):
    return "(?:" + "|".join(rng.sample(words, rng.randint(lo, min(hi, len(words))))) + ")"


def pattern(rng, lang):
    words = WORDS[lang]
    latin = lang in ("en", "ro")
    shape = rng.random()
    if shape < 0.25:
        core = alternation(rng, words, 8, 20)
    else:
        gap = r"(?:\w+\s+){0,%d}?" % rng.randint(1, 3) if latin else \
            r"(?:\S+\s+){0,%d}?" % rng.randint(2, 6)
        core = alternation(rng, words, 2, 7) + r"\s+" + gap + alternation(rng, words, 2, 6)
        if shape > 0.85:    # a second cue further on, as in the "X ... Y ... Z" rules
            core += r"\s+" + gap + alternation(rng, words, 2, 4)
    if latin:
        return r"\b" + core + r"\b"
    if lang in ("pa", "hi"):  # vowel signs are marks: \b breaks next to them (rules/README.md)
        return r"(?<![\p{L}\p{M}])" + core + r"(?![\p{L}\p{M}])"
    return core


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.stderr.write("usage: gen_rules.py N OUTDIR\n")
        return 2
    n, outdir = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(20261129)
    os.makedirs(outdir, exist_ok=True)
    files = {lang: open(os.path.join(outdir, "gen_%s.rules" % lang), "w", encoding="utf-8")
             for lang in LANGS}
    for i in range(n):
        lang = LANGS[i % len(LANGS)]
        r = rng.random()
        score = "-1.0" if r < 0.1 else "0.5" if r < 0.5 else "1.0"
        files[lang].write("rule GEN_%s_%04d\ncategory %s\nscore %s\nmatch /%s/\n"
                          "describe generated for the benchmark\n\n"
                          % (lang.upper(), i, CATEGORIES[(i // 5) % 5], score,
                             pattern(rng, lang)))
    for f in files.values():
        f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
