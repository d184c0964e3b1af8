/*  bell - the doorbell protocol, as a pure state machine (no I/O)
 *
 *  The trigger on notifications rings (NOTIFY) only while belfry_bell.armed
 *  is true, because a ringing transaction takes a database-wide lock at
 *  commit. The broker therefore keeps the bell disarmed while it is busy and
 *  arms it only when it goes idle:
 *
 *    DRAIN   the bell is disarmed (each read also disarms it). Read batches
 *            back to back while they return rows; on an empty read, ARM.
 *    SETTLE  the bell was just armed; arm_xid is an xid taken right after the
 *            arm committed. A writer that read the bell as disarmed got its
 *            xid before the arm became visible (the row DEFAULT assigns it
 *            before the trigger reads the bell), so its xid < arm_xid. Re-read
 *            with short backoff (1, 2, 4 .. ms, capped at the poll interval)
 *            until a read's snapshot has xmin > arm_xid: then every such
 *            writer has finished and that read has seen its rows.
 *    IDLE    armed and quiet: every new writer rings. A safety read every
 *            poll interval (it writes nothing when it finds nothing); if it
 *            finds rows anyway, go back to DRAIN.
 *
 *  A ring at any time leads to DRAIN (disarm + read); a ring that arrives
 *  while a query is in flight is remembered and handled when it completes,
 *  because that query's snapshot may predate the ringing commit.
 *
 *  The caller performs the returned action: send the named query (the state
 *  machine then counts itself busy until bell_on_read/bell_on_armed), or
 *  (re)arm its timer for *delay_ms, or nothing.
 */
#ifndef BELFRY_BELL_H
#define BELFRY_BELL_H

#include <stdint.h>

typedef enum { BELL_DRAIN = 0, BELL_SETTLE, BELL_IDLE } bell_mode_t;

typedef enum {
    BELL_NONE = 0,      /* nothing to do (a query is in flight) */
    BELL_READ_DISARM,   /* send the batch read that also disarms the bell */
    BELL_READ,          /* send the batch read, leaving the bell as it is */
    BELL_ARM,           /* send the arm query; report with bell_on_armed() */
    BELL_WAIT,          /* no query: wait for a ring or *delay_ms, then bell_on_timer() */
} bell_action_t;

typedef struct {
    bell_mode_t mode;
    int busy;           /* a query the machine asked for is in flight */
    int rung;           /* a ring arrived while busy */
    uint64_t arm_xid;   /* xid taken after the last arm committed */
    long backoff_ms;    /* next SETTLE re-read delay */
    long poll_ms;       /* the safety interval, and the backoff cap */
} bell_t;

/* Resets to DRAIN, not busy (also after a lost connection). poll_ms >= 1. */
void bell_init(bell_t *b, long poll_ms);
/* After (re)connecting and LISTENing: returns BELL_READ_DISARM. */
bell_action_t bell_start(bell_t *b, long *delay_ms);
/* A notification arrived. Returns BELL_READ_DISARM, or BELL_NONE if busy
 * (remembered). The caller cancels its timer when a query is returned. */
bell_action_t bell_on_ring(bell_t *b, long *delay_ms);
/* The caller's timer fired. Returns a read (or BELL_NONE if busy). */
bell_action_t bell_on_timer(bell_t *b, long *delay_ms);
/* A read committed with `rows` rows; snap_xmin is pg_snapshot_xmin of its
 * snapshot. Returns the next action. */
bell_action_t bell_on_read(bell_t *b, uint64_t rows, uint64_t snap_xmin, long *delay_ms);
/* The arm committed; arm_xid was assigned after that commit. */
bell_action_t bell_on_armed(bell_t *b, uint64_t arm_xid, long *delay_ms);

#endif
