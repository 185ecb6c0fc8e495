/*
 * normalize.h - the one canonical form in which rules and text meet (with utf8proc)
 *
 * Text: invalid UTF-8 -> U+FFFD; then NFKC + full case folding (utf8proc COMPOSE|COMPAT|
 * CASEFOLD), default-ignorable code points dropped (IGNORE: ZWNJ, ZWJ, ZWSP, bidi marks,
 * embeddings and isolates, ALM U+061C, soft hyphen, BOM, variation selectors), LUMP (curly
 * single quotes -> ', dashes and minus -> -, all Zs spaces -> space), line ends (CRLF, CR, NEL,
 * VT, FF, LS, PS) -> LF, tab -> space, other control characters removed (NLF2LF|STRIPCC: plain
 * STRIPCC alone would turn newlines into spaces), and then:
 *  - double quotes “ ” „ ‟ and guillemets « » -> "  ; ‚ ‛ -> '
 *  - Arabic tatweel, harakat U+064B-065F (hamza above/below included), U+0670, U+0610-061A,
 *    Quranic marks U+06D6-06ED and Arabic Extended-A marks dropped;
 *  - ي U+064A, ى U+0649, ئ U+0626 -> ی U+06CC   (hamza is treated as a diacritic)
 *  - ك U+0643, ڪ U+06AA -> ک U+06A9
 *  - ہ U+06C1, ە U+06D5, ۀ U+06C0, ۂ U+06C2 -> ه U+0647  (gol he and he meet)
 *  - أ إ ٱ ٲ ٳ -> ا ; ؤ -> و ; ۓ -> ے ; ۃ U+06C3 -> ة U+0629
 *  - KEPT DISTINCT: ے U+06D2 bari ye (Urdu کے/کی, ہے/ہی are different words), ھ U+06BE
 *    do-chashmi he (it marks aspirates: کھا "eat" vs کہا "said"), آ alef madda (a letter
 *    of its own in Urdu/Persian: آپ), ة, ء. Text typed on an Arabic/Persian keyboard that writes
 *    بهائی for بھائی does not meet it: rules that want both write [ھه].
 *  - Arabic-Indic, Extended Arabic-Indic, Devanagari and Gurmukhi digits -> ASCII 0-9;
 *    ، ٬ -> ,  ؛ -> ;  ؟ -> ?  ٪ -> %  ٫ ۔ । ॥ -> .
 *  - Devanagari nukta letters as base + U+093C (U+0958-095F, and U+0929, U+0931, U+0934, which
 *    NFC would compose); Gurmukhi U+0A33, U+0A36, U+0A59-0A5B, U+0A5E as base + U+0A3C. Because
 *    the nukta is a separate code point, a rule can make it optional: "ज़?रूर" (nukta then ?)
 *    matches both ज़रूर and the common nukta-less जरूर.
 *  - white space runs -> one space; with keep_newlines a run containing a line end -> one "
"
 *    (blank lines collapse); leading and trailing white space dropped.
 * Persian/Urdu joiners: ZWNJ is dropped, so "می‌خواهم" == "میخواهم"; the space-separated form
 * "می خواهم" stays different: a rule covers it with "می\s?خواهم".
 * Cost: one utf8proc decomposition into a code point buffer and one post-pass; output length
 * is linear in the input; no recursion.
 *
 * Patterns: normalize_pattern() folds the literal characters of a PCRE2 pattern with the same
 * table, so a rule written with either variant of a letter, or with or without ZWNJ, matches
 * text written either way. Syntax is left alone: escapes (\b \s \x{..} \p{..} \g.. \k..),
 * quantifiers, (?...) groups, names, callouts, (*VERBS), POSIX classes. Literal text inside
 * \Q..\E is folded. Inside [...] each member is folded on its own; ranges (a-z, ا-ی) are kept
 * as written. A literal that folds to an ASCII symbol (full-width "（" -> "(") is escaped,
 * to white space becomes \s; one followed by a quantifier that folds to 0 or 2+ characters is
 * grouped "(?:...)" so the quantifier keeps its meaning; a class member that folds to nothing
 * (ZWNJ) is kept as \x{200C}. ASCII white space is never touched (the x flag). NOT folded:
 * code points written as escapes (\x{643} stays ك: write the letter itself), \Q..\E inside a
 * class. A valid pattern stays valid (tests compile both with UTF|UCP|CASELESS).
 * One escape is rewritten: \d becomes [0-9] (0-9 inside a class). Text normalization folds every
 * Unicode decimal digit to ASCII, so the two match the same on normalized text, and PCRE2 builds
 * a start-of-match bitmap for [0-9] but not for UCP's \d (such rules ran 2-3x slower).
 *
 * OWNERSHIP  Results are malloc'd; the caller frees them.
 */
#ifndef AMENDS_NORMALIZE_H
#define AMENDS_NORMALIZE_H

#include <stddef.h>
#include <stdbool.h>

/* Normalize text. Returns malloc'd NUL-terminated UTF-8 and *outlen, or NULL when out of memory. */
char *normalize_text(const char *s, size_t len, bool keep_newlines, size_t *outlen);
/* The same result, computed by utf8proc over the whole text instead of by plain runs and
 * segments: the reference for tests and fuzz_normalize. */
char *normalize_text_whole(const char *s, size_t len, bool keep_newlines, size_t *outlen);
/* Normalize the literal characters of a PCRE2 pattern, leaving escapes, classes' syntax and
 * metacharacters alone (letters inside [...] are folded too). NULL when out of memory. */
char *normalize_pattern(const char *pattern, size_t len, size_t *outlen);
/* The same with the rule's compile flags: NORMALIZE_PAT_EXTENDED when the pattern is compiled
 * with PCRE2_EXTENDED ('#' starts a comment that is copied as is). Inline (?x) is seen too. */
#define NORMALIZE_PAT_EXTENDED 0x1u
char *normalize_pattern_flags(const char *pattern, size_t len, unsigned flags, size_t *outlen);

#endif
