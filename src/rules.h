/*
 * rules.h - rule files -> one immutable compiled ruleset, shared by every thread
 *
 * FILES  rules_load(dir) reads every DIR/NAME.rules in name order (scandir + alphasort); names
 * starting with "." and anything not ending in ".rules" (x.rules~, x.rules.bak) are skipped.
 * A world-writable rule file is refused (error); rules_lint warns about group-writable ones.
 * Files are UTF-8 (a leading BOM and CRLF line ends are accepted), at most 16 MiB.
 *
 * FORMAT (amends.rules(5); this comment is the spec)
 *
 *     # comment
 *     rule     EN_REFUND_MONEY_BACK
 *     category refund
 *     score    2.5
 *     target   body            # subject | body | quoted | from | header:NAME
 *     match    /\bmoney\s+back\b/i
 *     describe Asks for money back
 *
 *  - One "keyword value" per line; blank lines and lines whose first non-blank is # are comments.
 *    Keywords are lowercase. A rule starts at "rule NAME" and runs to the next "rule" or end of
 *    file; each other keyword at most once per rule, in any order.
 *  - rule NAME: 1-128 ASCII letters, digits or _ ; unique across all files of the set.
 *  - category: one of the config's categories (default complaint, abuse, cancellation, refund,
 *    unethical). Required.
 *  - score: decimal [+-]digits[.digits], -1000..1000; negative allowed. Default 1.0.
 *  - target: body (the customer's new text; default), subject, quoted (quoted/forwarded text),
 *    from ("Display Name <addr>"), header:NAME (each header of that name, case-insensitive,
 *    decoded value). rule, category, score and target may end with a "# comment".
 *  - match: the raw PCRE2 pattern (no double escaping) between delimiters, then flags. The
 *    delimiter is any ASCII punctuation except \ and #, usually /; ( [ { < close with ) ] } >.
 *    The pattern runs to the LAST closing delimiter on the line, so /a/b/ is the pattern "a/b";
 *    only flags may follow it (no comment). Flags: i caseless (the default), I case-sensitive,
 *    x extended, s dotall, m multiline. Required; at most 4096 bytes; \C and \G are refused.
 *  - describe: free text to the end of the line (may start with #). Optional.
 *  - group NAME: optional, a name like a rule's (its own namespace). The rules of one group are
 *    one cue: of those that hit a message, only the best score counts (verdict.c), as a rule
 *    counts once however often it hits. For a cue whose pattern outgrows the 4096 bytes, or one
 *    cue written once per script. A group's rules share a category and the sign of their
 *    scores (an error at the later rule's group line otherwise, across files).
 *
 * COMPILING  The literal text of each pattern goes through normalize_pattern_flags() so it meets
 * the normalized message text (both are NFKC + case-folded: I matters only for what folding
 * leaves). Options UTF|UCP|MATCH_INVALID_UTF, JIT (complete + partial-hard) when available.
 *
 * DIAGNOSTICS  "file:line:col: error: text"; columns count characters from 1. Every problem is
 * reported (at most 200): unknown keyword, keyword outside a rule, repeated keyword, missing
 * value, missing category or match, bad or duplicate name, unknown category, bad score, bad
 * target, bad delimiter, unterminated or empty pattern, unknown flag, PCRE2 compile errors
 * (PCRE2's message, column of the offending character in the file), invalid UTF-8, NUL bytes,
 * a group whose rules differ in category or sign. A file with any error gives no ruleset (a reload keeps the last good one).
 *
 * LONG-STANDING CUSTOMERS  rules_load also reads cfg->rules.longstanding_file (if set): one
 * address or @domain per line, # comments, case-insensitive; bad lines are warnings, a missing
 * or world-writable file is an error. It lives in the ruleset so it reloads with the rules.
 *
 * A ruleset is built once (start, reload) and never changes: threads match without a lock.
 * Per-message state belongs to match.c.
 *
 * OWNERSHIP  rules_load() returns one reference; drop it with rules_unref(). Rules, strings
 *            and compiled code belong to the ruleset.
 */
#ifndef AMENDS_RULES_H
#define AMENDS_RULES_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "diag.h"
#include "config.h"

enum rules_target {
	RULES_TARGET_BODY = 0,     /* the customer's new text */
	RULES_TARGET_SUBJECT,
	RULES_TARGET_QUOTED,       /* quoted / forwarded text */
	RULES_TARGET_FROM,         /* "Display Name <addr>" */
	RULES_TARGET_HEADER,       /* header:NAME, decoded value */
	RULES_TARGET_COUNT
};

struct rule {
	char *name;
	int category;              /* index into config categories */
	double score;              /* may be negative */
	enum rules_target target;
	char *header_name;         /* for RULES_TARGET_HEADER */
	char *pattern;             /* as written */
	char *flags;               /* as written */
	char *description;
	char *file;                /* path it came from */
	char *group;               /* "group NAME", or NULL */
	int group_id;              /* index of the group in the ruleset (0..n_groups), or -1 */
	int group_line, group_col; /* where "group" names it */
	int line;                  /* line of "rule" */
	int pattern_line;          /* line of "match" */
	int pattern_col;           /* column (characters, from 1) of the pattern's first character */
	uint32_t options;          /* PCRE2 compile options */
	pcre2_code *code;
	bool jit;                  /* JIT-compiled for complete matches */
	bool jit_partial;          /* ... and for PCRE2_PARTIAL_HARD (not lead rules: rules.c) */
	/* prefilter (rules_anchors.c): every match contains one of these (normalized, ASCII
	 * lowercased); n_anchors == 0: no prefilter, the rule always runs */
	char **anchors;
	size_t *anchor_len;
	size_t n_anchors;
	/* ... and one of these as well, from another part of the pattern (rules_anchors.c, ALSO):
	 * the rule runs only when both sets occur; n_also == 0: none */
	char **also;
	size_t *also_len;
	size_t n_also;
	/* lead: every match STARTS with one of the anchors (rules_anchors.c, LEADS); match.c then
	 * tries lead_code (compiled anchored, JIT) only where an anchor occurs */
	bool lead;
	bool lead_digit;           /* some lead has a digit in it: its places can be thousands */
	bool lead_word;            /* every match starts at \b with an ASCII word character: a lead
				    * right after one is no place (rules_anchors.c, WORD START) */
	pcre2_code *lead_code;
};

struct rules_prefilter;       /* one Aho-Corasick automaton per target (rules_anchors.c) */

/* Per-thread scratch of rules_prefilter_scan; zero-initialise, free with rules_scan_free. */
struct rules_scan {
	unsigned char *mark;
	uint32_t *hits;
	size_t cap;
	/* where the leads of lead rules occur: (p_rule, p_pos) pairs as found, then grouped */
	uint32_t *p_rule, *p_pos;
	size_t np, pcap;
	uint32_t *lead_n, *lead_off;  /* per rule: places, and (grouped) offset into grp */
	unsigned char *also;          /* per rule: one of its ALSO set occurs (zero between scans) */
	size_t rcap, n_rules;
	uint32_t *grp;
	size_t gcap;
	bool grouped;
};
#define RULES_LEAD_MAX_POS 4096       /* places of one rule's leads (a try is ~0.1 us); more: searched */
#define RULES_LEAD_MAX_PAIRS (1u << 16)   /* places of all rules in one message (12 bytes each,
                                            * per thread: 768 KiB at most) */

struct ruleset {
	atomic_int refs;
	struct rule *rules;
	size_t n_rules;
	size_t n_groups;           /* distinct "group" names (rule.group_id) */
	char *category_names[CONFIG_MAX_CATEGORIES];  /* copied from the config it was built for */
	size_t n_categories;
	char **longstanding;       /* lowercased addresses and "@domain"s */
	size_t n_longstanding;
	unsigned long generation;  /* increases with each successful load */
	struct rules_prefilter *prefilter;
};

/* Load every *.rules file in dir (name order) for the config's categories. With
 * rules.unsafe_rules "refuse" (the default) a rule that can backtrack catastrophically (the
 * lint's static checks, or a PCRE2 limit on its probe set; not its timing) fails the load. */
struct ruleset *rules_load(const char *dir, const struct config *cfg, struct diag *d);
/* Parse one buffer (tests, fuzzing); file is the name used in diagnostics. */
struct ruleset *rules_load_buffer(const char *file, const char *text, size_t len,
				  const struct config *cfg, struct diag *d);
struct ruleset *rules_ref(struct ruleset *rs);
void rules_unref(struct ruleset *rs);
/* Lint checks: nested unbounded quantifiers, overlapping alternatives under a star, rules that
 * hit a match limit or take over 5 ms of CPU on a probe set (errors when rules.unsafe_rules is
 * "refuse", warnings when "contain"); group/world-writable files, rules without JIT (warnings). */
void rules_lint(const struct ruleset *rs, const struct config *cfg, struct diag *d);
const char *rules_target_name(enum rules_target t);
/* JIT-compile the rules of later loads (default on); tests turn it off to run the interpreter.
 * Set before threads start. */
void rules_set_jit(bool enabled);
/* Does the ruleset have anchored rules of target t (not header)? */
bool rules_prefilter_has(const struct ruleset *rs, enum rules_target t);
/* Scan s[0..len) once for the anchors of every rule of target t and set ok[i] = 1 (ok has
 * n_rules bytes, cleared by the caller) for each rule i one of whose anchors occurs, and record
 * where the leads of lead rules occur (ok[i] = 2 when there were too many places to keep). Rules
 * without anchors are not marked. Returns -1 when out of memory (scratch growth). */
int rules_prefilter_scan(const struct ruleset *rs, enum rules_target t, const char *s, size_t len,
			 struct rules_scan *sc, unsigned char *ok);
/* Before the scans of one message: forget the places of the last one. -1 when out of memory. */
int rules_scan_begin(struct rules_scan *sc, size_t n_rules);
/* After the scans: the places (byte offsets, ascending, no repeats) where lead rule `rule` can
 * start a match, valid when its ok byte is 1 (2: it occurs but its places were too many to
 * keep). -1 when out of memory. */
int rules_scan_leads(struct rules_scan *sc, size_t rule, const uint32_t **pos, size_t *n);
void rules_scan_free(struct rules_scan *sc);
/* The key under which rule i counts once per message: its group's (n_rules + group_id) or its
 * own index. Keys are below n_rules + n_groups. */
static inline size_t rules_count_key(const struct ruleset *rs, size_t i)
{
	return rs->rules[i].group_id >= 0 ? rs->n_rules + (size_t)rs->rules[i].group_id : i;
}
/* Does s[0..len) contain one of r's anchors (ASCII caseless)? For header rules. */
bool rules_anchors_in(const struct rule *r, const char *s, size_t len);
/* Is addr (lowercased) on the long-standing list (exact or @domain)? */
bool rules_is_longstanding(const struct ruleset *rs, const char *addr);

#endif
