/*  bell - the doorbell protocol, as a pure state machine (no I/O)
 *
 *  See bell.h for the protocol. Design: every entry point ends in one of the
 *  helpers below, which set `busy` exactly when they hand the caller a query,
 *  so the machine can never ask for two queries at once.
 */
#include "bell.h"

#include <stddef.h>

static bell_action_t s_query(bell_t *b, bell_action_t a)
{
    b->busy = 1;
    b->rung = 0;   /* the read about to be sent sees every commit rung so far */
    return a;
}

static bell_action_t s_drain(bell_t *b)
{
    b->mode = BELL_DRAIN;
    return s_query(b, BELL_READ_DISARM);
}

static bell_action_t s_wait(long ms, long *delay_ms)
{
    if (delay_ms)
        *delay_ms = ms;
    return BELL_WAIT;
}

void bell_init(bell_t *b, long poll_ms)
{
    b->mode = BELL_DRAIN;
    b->busy = 0;
    b->rung = 0;
    b->arm_xid = 0;
    b->backoff_ms = 1;
    b->poll_ms = poll_ms < 1 ? 1 : poll_ms;
}

bell_action_t bell_start(bell_t *b, long *delay_ms)
{
    (void)delay_ms;
    return s_drain(b);
}

bell_action_t bell_on_ring(bell_t *b, long *delay_ms)
{
    (void)delay_ms;
    if (b->busy) {
        b->rung = 1;
        return BELL_NONE;
    }
    return s_drain(b);
}

bell_action_t bell_on_timer(bell_t *b, long *delay_ms)
{
    (void)delay_ms;
    if (b->busy)
        return BELL_NONE;
    return s_query(b, b->mode == BELL_DRAIN ? BELL_READ_DISARM : BELL_READ);
}

bell_action_t bell_on_read(bell_t *b, uint64_t rows, uint64_t snap_xmin, long *delay_ms)
{
    b->busy = 0;
    if (b->rung)
        return s_drain(b);
    switch (b->mode) {
    case BELL_DRAIN:
        if (rows > 0)
            return s_query(b, BELL_READ_DISARM);
        return s_query(b, BELL_ARM);
    case BELL_SETTLE:
        if (snap_xmin > b->arm_xid) {
            /* Every writer that could have seen the bell disarmed has ended
             * before this read's snapshot, so this read saw its rows. */
            b->mode = BELL_IDLE;
            return s_wait(b->poll_ms, delay_ms);
        }
        if (rows > 0)
            b->backoff_ms = 1;
        long ms = b->backoff_ms;
        b->backoff_ms = b->backoff_ms * 2 > b->poll_ms ? b->poll_ms : b->backoff_ms * 2;
        return s_wait(ms, delay_ms);
    case BELL_IDLE:
    default:
        if (rows > 0)
            return s_drain(b);   /* rows without a ring: busy again */
        return s_wait(b->poll_ms, delay_ms);
    }
}

bell_action_t bell_on_armed(bell_t *b, uint64_t arm_xid, long *delay_ms)
{
    (void)delay_ms;
    b->busy = 0;
    if (b->rung)
        return s_drain(b);
    b->mode = BELL_SETTLE;
    b->arm_xid = arm_xid;
    b->backoff_ms = 1;
    return s_query(b, BELL_READ);
}
