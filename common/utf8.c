/*  utf8 - incremental UTF-8 validation
 *
 *  A small deterministic automaton over bytes. The state is a plain integer the
 *  caller keeps between calls, so a text message split across WebSocket
 *  fragments (or TCP reads) is validated as it arrives, and an invalid byte is
 *  reported the moment it is seen rather than when the message is complete.
 *
 *  Design: the states say what the next byte must be (RFC 3629 §4, the
 *  UTF8-octets grammar):
 *
 *    ACCEPT  at a character boundary
 *    REJECT  invalid input seen (absorbing)
 *    TAIL1   one more continuation byte 80..BF, then ACCEPT
 *    TAIL2   two more continuation bytes
 *    TAIL3   three more continuation bytes
 *    E0      after E0: next is A0..BF (no overlong 3-byte forms), then TAIL1
 *    ED      after ED: next is 80..9F (no surrogates D800..DFFF), then TAIL1
 *    F0      after F0: next is 90..BF (no overlong 4-byte forms), then TAIL2
 *    F4      after F4: next is 80..8F (nothing above U+10FFFF), then TAIL2
 *
 *  Lead bytes C0, C1 (overlong 2-byte forms) and F5..FF never start a valid
 *  sequence, and a continuation byte at a boundary is invalid. A run of ASCII
 *  at a boundary, the common case, is skipped in a tight loop.
 */
#include "utf8.h"

enum {
    S_ACCEPT = UTF8_ACCEPT,
    S_REJECT = UTF8_REJECT,
    S_TAIL1, S_TAIL2, S_TAIL3,
    S_E0, S_ED, S_F0, S_F4,
};

/* The transition function: the state after byte c in state s. */
static uint32_t s_step(uint32_t s, uint8_t c)
{
    switch (s) {
    case S_ACCEPT:
        if (c < 0x80)
            return S_ACCEPT;
        if (c >= 0xC2 && c <= 0xDF)
            return S_TAIL1;
        if (c == 0xE0)
            return S_E0;
        if (c == 0xED)
            return S_ED;
        if (c >= 0xE1 && c <= 0xEF)
            return S_TAIL2;
        if (c == 0xF0)
            return S_F0;
        if (c >= 0xF1 && c <= 0xF3)
            return S_TAIL3;
        if (c == 0xF4)
            return S_F4;
        return S_REJECT;            /* 80..C1, F5..FF */
    case S_TAIL1:
        return (c & 0xC0) == 0x80 ? S_ACCEPT : S_REJECT;
    case S_TAIL2:
        return (c & 0xC0) == 0x80 ? S_TAIL1 : S_REJECT;
    case S_TAIL3:
        return (c & 0xC0) == 0x80 ? S_TAIL2 : S_REJECT;
    case S_E0:
        return c >= 0xA0 && c <= 0xBF ? S_TAIL1 : S_REJECT;
    case S_ED:
        return c >= 0x80 && c <= 0x9F ? S_TAIL1 : S_REJECT;
    case S_F0:
        return c >= 0x90 && c <= 0xBF ? S_TAIL2 : S_REJECT;
    case S_F4:
        return c >= 0x80 && c <= 0x8F ? S_TAIL2 : S_REJECT;
    default:
        return S_REJECT;            /* a state this module never produces */
    }
}

/* Feeds s[0..n) to the automaton from `state` and returns the new state:
 * UTF8_ACCEPT at a character boundary, UTF8_REJECT once anything invalid was
 * seen (it stays rejected, and the rest of the input is not read), otherwise a
 * value meaning "inside a character". n may be 0; s may be NULL when n is 0. */
uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        if (state == S_ACCEPT) {
            while (i < n && s[i] < 0x80)
                i++;
            if (i == n)
                break;
        }
        state = s_step(state, s[i++]);
        if (state == S_REJECT)
            break;
    }
    return state;
}

/* 1 if s[0..n) is complete, valid UTF-8 (ending at a character boundary),
 * else 0. The empty string is valid. */
int utf8_valid(const uint8_t *s, size_t n)
{
    return utf8_feed(UTF8_ACCEPT, s, n) == UTF8_ACCEPT;
}
