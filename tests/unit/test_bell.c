/* Unit tests for broker/bell.c: the doorbell protocol state machine. */
#include "../../broker/bell.c"

#include "test.h"

TEST(start_disarms_and_drains_until_empty)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 1000);
    CHECK_EQ_INT(bell_start(&b, &d), BELL_READ_DISARM);
    CHECK(b.busy);
    CHECK_EQ_INT(bell_on_read(&b, 10, 5, &d), BELL_READ_DISARM);   /* rows: read again */
    CHECK_EQ_INT(bell_on_read(&b, 1, 5, &d), BELL_READ_DISARM);
    CHECK_EQ_INT(bell_on_read(&b, 0, 5, &d), BELL_ARM);            /* empty: arm */
    CHECK(b.busy);
}

TEST(settle_rereads_with_backoff_until_writers_finished)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 10);
    bell_start(&b, &d);
    bell_on_read(&b, 0, 5, &d);
    CHECK_EQ_INT(bell_on_armed(&b, 100, &d), BELL_READ);           /* read right after arming */
    CHECK_EQ_INT(b.mode, BELL_SETTLE);
    long want[] = { 1, 2, 4, 8, 10, 10 };                          /* doubling, capped at poll */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_EQ_INT(bell_on_read(&b, 0, 100, &d), BELL_WAIT);     /* xmin == arm xid: not yet */
        CHECK_EQ_INT(d, want[i]);
        CHECK_EQ_INT(bell_on_timer(&b, &d), BELL_READ);            /* re-read keeps the bell armed */
    }
    /* rows from a late writer reset the backoff */
    CHECK_EQ_INT(bell_on_read(&b, 3, 99, &d), BELL_WAIT);
    CHECK_EQ_INT(d, 1);
    CHECK_EQ_INT(bell_on_timer(&b, &d), BELL_READ);
    CHECK_EQ_INT(bell_on_read(&b, 0, 101, &d), BELL_WAIT);         /* all finished */
    CHECK_EQ_INT(d, 10);
    CHECK_EQ_INT(b.mode, BELL_IDLE);
}

TEST(idle_safety_read_writes_nothing_and_drains_on_rows)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 500);
    bell_start(&b, &d);
    bell_on_read(&b, 0, 1, &d);
    bell_on_armed(&b, 7, &d);
    CHECK_EQ_INT(bell_on_read(&b, 0, 8, &d), BELL_WAIT);
    CHECK_EQ_INT(b.mode, BELL_IDLE);
    CHECK_EQ_INT(bell_on_timer(&b, &d), BELL_READ);                /* not READ_DISARM, not ARM */
    CHECK_EQ_INT(bell_on_read(&b, 0, 9, &d), BELL_WAIT);
    CHECK_EQ_INT(d, 500);
    CHECK_EQ_INT(bell_on_timer(&b, &d), BELL_READ);
    CHECK_EQ_INT(bell_on_read(&b, 2, 9, &d), BELL_READ_DISARM);    /* rows without a ring */
    CHECK_EQ_INT(b.mode, BELL_DRAIN);
}

TEST(ring_while_idle_disarms_and_reads)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 500);
    bell_start(&b, &d);
    bell_on_read(&b, 0, 1, &d);
    bell_on_armed(&b, 7, &d);
    bell_on_read(&b, 0, 8, &d);
    CHECK_EQ_INT(bell_on_ring(&b, &d), BELL_READ_DISARM);
    CHECK_EQ_INT(b.mode, BELL_DRAIN);
}

TEST(ring_while_busy_is_remembered_never_two_queries)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 500);
    bell_start(&b, &d);
    CHECK_EQ_INT(bell_on_ring(&b, &d), BELL_NONE);
    CHECK_EQ_INT(bell_on_timer(&b, &d), BELL_NONE);
    /* the read in flight may predate the ringing commit: read again, don't arm */
    CHECK_EQ_INT(bell_on_read(&b, 0, 5, &d), BELL_READ_DISARM);
    CHECK_EQ_INT(bell_on_read(&b, 0, 5, &d), BELL_ARM);
    CHECK_EQ_INT(bell_on_ring(&b, &d), BELL_NONE);                 /* ring during the arm */
    CHECK_EQ_INT(bell_on_armed(&b, 9, &d), BELL_READ_DISARM);
    CHECK_EQ_INT(b.mode, BELL_DRAIN);
}

TEST(ring_during_settle_goes_back_to_drain)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 500);
    bell_start(&b, &d);
    bell_on_read(&b, 0, 5, &d);
    bell_on_armed(&b, 9, &d);
    CHECK_EQ_INT(bell_on_ring(&b, &d), BELL_NONE);
    CHECK_EQ_INT(bell_on_read(&b, 0, 10, &d), BELL_READ_DISARM);   /* even though settled */
}

TEST(init_resets_after_a_lost_connection)
{
    bell_t b;
    long d = -1;
    bell_init(&b, 0);                                              /* clamped to 1 ms */
    CHECK_EQ_INT(b.poll_ms, 1);
    bell_start(&b, &d);
    bell_on_ring(&b, &d);
    bell_init(&b, 100);
    CHECK(!b.busy);
    CHECK(!b.rung);
    CHECK_EQ_INT(b.mode, BELL_DRAIN);
    CHECK_EQ_INT(bell_start(&b, &d), BELL_READ_DISARM);
}

TEST_MAIN(start_disarms_and_drains_until_empty,
          settle_rereads_with_backoff_until_writers_finished,
          idle_safety_read_writes_nothing_and_drains_on_rows,
          ring_while_idle_disarms_and_reads,
          ring_while_busy_is_remembered_never_two_queries,
          ring_during_settle_goes_back_to_drain,
          init_resets_after_a_lost_connection)
