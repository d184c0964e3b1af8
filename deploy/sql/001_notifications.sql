-- 001_notifications.sql - the log, the doorbell and the batch cursor
--
-- Applied by `belfry-broker --init-schema`, in one transaction, once (recorded
-- in belfry_schema_version). Do not put BEGIN/COMMIT in migration files.
-- See docs/broker.md for how the broker uses these tables.

-- The log. Applications INSERT here; the broker streams every committed row.
-- txid is the writing (top-level) transaction: the broker's snapshot cursor
-- selects rows by the visibility of that transaction, never by id.
CREATE TABLE notifications (
    id          bigserial   PRIMARY KEY,
    namespace   text        NOT NULL DEFAULT '/',
    room        text        NOT NULL,
    event       text        NOT NULL DEFAULT 'notification',
    payload     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz,
    txid        xid8        NOT NULL DEFAULT pg_current_xact_id()
);

-- The batch read is a range on txid (pg_snapshot_xmin(S0) .. pg_snapshot_xmax(S1)).
CREATE INDEX notifications_txid_idx ON notifications (txid);
-- Per-room reads (replay, unread lists).
CREATE INDEX notifications_room_id_idx ON notifications (room, id);

-- The doorbell flag: one row. While armed, a writing statement rings
-- (pg_notify(channel, '')); while the broker is busy reading it is disarmed
-- and writers skip the NOTIFY and its commit-time lock. The broker sets
-- channel to its --channel when it arms.
CREATE TABLE belfry_bell (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    armed   boolean NOT NULL DEFAULT true,
    channel text    NOT NULL DEFAULT 'belfry'
);
INSERT INTO belfry_bell (one, armed, channel) VALUES (true, true, 'belfry');

-- SECURITY DEFINER: application roles need INSERT on notifications only, not
-- access to belfry_bell. search_path is pinned for the same reason.
CREATE FUNCTION belfry_ring() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    b record;
BEGIN
    SELECT armed, channel INTO b FROM belfry_bell;
    IF b.armed THEN
        -- Identical notifications of one transaction are folded by
        -- PostgreSQL: a 10,000-row transaction rings once.
        PERFORM pg_notify(b.channel, '');
    END IF;
    RETURN NULL;
END
$$;

-- One check per INSERT statement (not per row): a 10,000-row INSERT reads the
-- bell once. The writer's xid is assigned by the rows' DEFAULT before the
-- trigger reads the bell, which the broker's re-arm protocol relies on.
CREATE TRIGGER notifications_ring
    AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION belfry_ring();

-- One row per non-empty batch the broker has read (plus the seed row of the
-- very first start, row_count 0). The newest row is the cursor: the next batch
-- is the rows whose transactions are visible in a new snapshot but not in
-- snap. Row k (0-based, by id) of a batch has seq = first_seq + k, so every
-- delivered row's seq can be recomputed from this table and notifications.
CREATE TABLE belfry_batches (
    batch_id    bigserial   PRIMARY KEY,
    snap        pg_snapshot NOT NULL,
    first_seq   bigint      NOT NULL,
    row_count   bigint      NOT NULL,
    created_at  timestamptz DEFAULT now()
);
-- Two brokers leading at once (it cannot happen while the advisory lock
-- holds) would write two batches with one first_seq: refuse the second.
CREATE UNIQUE INDEX belfry_batches_first_seq_idx
    ON belfry_batches (first_seq) WHERE row_count > 0;
