/*
 * lang.h - guess the language of a customer's text
 *
 * Returns one of "en", "ur", "pa", "fa", "hi", "ur-Latn", "hi-Latn" (or "und" for no text).
 * Script first (Gurmukhi -> pa, Devanagari -> hi, Arabic script -> ur or fa by letters and
 * function words only one of them uses), then, for Latin text, romanized Urdu / Hindi markers
 * against English. Works on normalized or raw text.
 */
#ifndef AMENDS_LANG_H
#define AMENDS_LANG_H

#include <stddef.h>

const char *lang_detect(const char *text, size_t len);
/* The base language for a detected code: "ur-Latn" -> "ur", "hi-Latn" -> "hi". */
const char *lang_base(const char *code);

#endif
