/*  utf8 - incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 *  nothing above U+10FFFF), resumable across fragment boundaries. */
#ifndef BELFRY_UTF8_H
#define BELFRY_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0   /* at a character boundary */
#define UTF8_REJECT 1   /* invalid; stays rejected */

/* Feeds bytes; state starts at UTF8_ACCEPT. Returns the new state: UTF8_ACCEPT,
 * UTF8_REJECT, or another value meaning "inside a character, need more". */
uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t n);
/* 1 if s[0..n) is complete valid UTF-8, else 0. */
int utf8_valid(const uint8_t *s, size_t n);

#endif
