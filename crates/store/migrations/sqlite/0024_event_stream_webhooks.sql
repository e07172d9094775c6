-- The event stream and webhooks. Kept in lockstep with ../postgres/0024_event_stream_webhooks.sql.
--
-- An event's place in the stream is (stream_xid, stream_position). SQLite has one writer at a time, so
-- positions are taken in commit order and stream_xid stays 0; PostgreSQL needs the transaction id too.
ALTER TABLE events ADD COLUMN stream_xid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN stream_position INTEGER NOT NULL DEFAULT 0;
UPDATE events SET stream_position = ordered.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, sequence, id) AS n FROM events) AS ordered
WHERE events.id = ordered.id;
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
    created_at INTEGER NOT NULL
) STRICT;
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
    attempts INTEGER NOT NULL,
    response_status INTEGER,
    last_error TEXT,
    next_attempt_at INTEGER,
    replay_of TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at, id);
