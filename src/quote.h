/*
 * quote.h - split a plain-text body into the customer's new text and the text they quote
 *
 * Quoted text is: lines starting with '>' (after optional blanks), and everything from an
 * attribution line on ("On ... wrote:", "بتاریخ ... نے لکھا:", "در تاریخ ... نوشت:",
 * "... ਨੇ ਲਿਖਿਆ:", "... ने लिखा:", "... ne likha:"), an Outlook "-----Original Message-----" or
 * "From:/Sent:" block, or a forwarded-message separator ("---------- Forwarded message ---------"
 * and its localized forms). html.c renders <blockquote> as '>' lines, so HTML goes through
 * the same split.
 *
 * OWNERSHIP  quote_split() appends to the caller's buffers; it allocates nothing else.
 */
#ifndef AMENDS_QUOTE_H
#define AMENDS_QUOTE_H

#include <stddef.h>
#include <stdbool.h>

struct strbuf;

/* quote_split - append the new lines of text to new_text and the quoted ones to quoted
 * (LF line ends; each kept line ends in "\n"; leading and trailing blank lines of the new text
 * are dropped). Linear in len. Returns 0, or -1 when a buffer ran out of memory. */
int quote_split(const char *text, size_t len, struct strbuf *new_text, struct strbuf *quoted);

/* quote_is_separator - is this one line (no LF) an attribution or forward/original-message
 * separator on its own? (Multi-line attributions need quote_split.) For tests and amendsctl. */
bool quote_is_separator(const char *line, size_t len);

#endif
