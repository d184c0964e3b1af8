-- 002_rpc.sql - what the broker's upstream RPC needs: recovery sessions,
-- indexes for unread lists and seq lookups, and an example event handler.
--
-- Applied by `belfry-broker --init-schema` after 001 (never edit 001: it may
-- be applied already). See docs/broker.md, "Upstream RPC".

-- Connection-state recovery: the rooms of a Socket.IO socket (pid), written
-- by the gateway through `session_put` and read back by `recover`. Rows
-- older than the broker's --retention-s are pruned by the broker.
CREATE TABLE belfry_sessions (
    pid         text        PRIMARY KEY,
    user_id     text        NOT NULL,
    ns          text        NOT NULL,
    rooms       text[]      NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX belfry_sessions_updated_idx ON belfry_sessions (updated_at);

-- Unread lists (`unread`, `mark_read`): the unread rows of one user's room,
-- newest first; small, since read rows leave it.
CREATE INDEX notifications_unread_idx ON notifications (room, namespace, id)
    WHERE read_at IS NULL;

-- Retention prunes batches by age.
CREATE INDEX belfry_batches_created_idx ON belfry_batches (created_at);
-- Finding the batch that delivered a row (positions of rooms the broker has
-- not published to since it started): snapshot xmax grows with batch_id.
CREATE INDEX belfry_batches_xmax_idx ON belfry_batches (pg_snapshot_xmax(snap));

-- The application's client events. A client event that is not built in
-- (unread, mark_read, mark_all_read, publish) reaches the broker's
-- --event-function (default belfry_handle_event) as
--     fn(user_id text, ns text, name text, args jsonb) RETURNS jsonb
-- where args is the JSON array of the event's arguments. The result becomes
-- the client's acknowledgement; an exception becomes an error ack carrying
-- its message. Replace this function (CREATE OR REPLACE in your own
-- migration) or point --event-function at your own.
--
-- This example answers:
--   ping            -> {"pong": true, "user": <user>}
--   note [{"text"}] -> inserts a notification for the user (delivered to
--                      every tab of the user) and returns {"id": <new id>}
--   anything else   -> raises 'unknown event: <name>'
CREATE FUNCTION belfry_handle_event(user_id text, ns text, name text, args jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
    txt text;
BEGIN
    IF name = 'ping' THEN
        RETURN jsonb_build_object('pong', true, 'user', user_id);
    ELSIF name = 'note' THEN
        txt := args -> 0 ->> 'text';
        IF txt IS NULL OR length(txt) = 0 OR length(txt) > 1000 THEN
            RAISE EXCEPTION 'note takes {"text": "1 to 1000 characters"}';
        END IF;
        INSERT INTO notifications (namespace, room, event, payload)
        VALUES (ns, 'user_' || user_id, 'note', jsonb_build_object('text', txt))
        RETURNING id INTO new_id;
        RETURN jsonb_build_object('id', new_id);
    END IF;
    RAISE EXCEPTION 'unknown event: %', name;
END
$$;
