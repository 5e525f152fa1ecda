-- Which outbox events an endpoint is owed: those that happen while it is enabled. Events are
-- compared by `seq`, not by time: stamps come from each backend's clock and are kept to a
-- different precision by each database, while `seq` is handed out in the order events are
-- written.
--
-- `events_after_seq`: the highest event when the endpoint was created or last re-enabled; it
-- is owed only events above it. `events_until_seq`: the highest event when it was last
-- disabled (by its merchant or by its deliveries); while disabled it is still owed the events
-- up to it (they wait as deliveries until it is re-enabled), none after.
--
-- Endpoints from before: enabled ones keep being owed everything not yet fanned out; disabled
-- ones nothing, as before.
ALTER TABLE webhook_endpoints ADD COLUMN events_after_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN events_until_seq BIGINT;

UPDATE webhook_endpoints SET events_until_seq = 0 WHERE enabled = FALSE;
