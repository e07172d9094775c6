-- The event stream and webhooks. Kept in lockstep with ../sqlite/0024_event_stream_webhooks.sql.
--
-- An event's place in the stream is (stream_xid, stream_position): the id of the transaction that wrote it
-- and a number from a sequence. Sequence numbers are taken in one order and committed in another, so a
-- reader never orders by the number alone: it reads only events of transactions older than the oldest one
-- still running (its snapshot's xmin), in (stream_xid, stream_position) order, and so never passes an event
-- that commits later. Events written before this migration keep transaction 0.
ALTER TABLE events ADD COLUMN stream_xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN stream_position BIGINT NOT NULL DEFAULT 0;
UPDATE events SET stream_position = ordered.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, sequence, id) AS n FROM events) ordered
WHERE events.id = ordered.id;
CREATE SEQUENCE event_stream_sequence;
SELECT setval('event_stream_sequence', COALESCE(MAX(stream_position), 0) + 1, false) FROM events;
CREATE INDEX events_stream ON events (account_id, stream_xid, stream_position);
CREATE INDEX events_stream_position ON events (stream_position);

-- Endpoints an account has events delivered to; the secret signs each delivery.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    url TEXT NOT NULL,
    -- A JSON array of event types (`instance.status_changed`, `instance.*`); empty for every event.
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, created_at);

-- One event sent to one webhook: written with the event, sent (and retried) by a job.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL,
    response_status BIGINT,
    last_error TEXT,
    next_attempt_at BIGINT,
    replay_of TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at, id);
