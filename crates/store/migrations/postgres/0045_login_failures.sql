-- Failed passwords by email and by client address, shared by every server on the database so that
-- replicas throttle log-ins together (core::accounts::login_throttle). An attempt is counted when it
-- is let through, before its password is checked, and taken back when it turns out right.
-- Kept in lockstep with ../sqlite/0045_login_failures.sql.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);
