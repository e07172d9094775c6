-- The webhook delivery log is pruned oldest first: deliveries by age.
-- Kept in lockstep with ../postgres/0029_webhook_delivery_age_index.sql.

CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at, id);
