-- Platform pushes already applied, by their Standard Webhooks `webhook-id`, for as long as a
-- push's timestamp is accepted: a captured push sent again is acknowledged and changes nothing.
CREATE TABLE sync_pushes (
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    push_id     TEXT NOT NULL,
    -- The run that applies it; a push whose run failed may be applied again.
    run_id      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (merchant_id, push_id)
);

-- Ids older than the tolerance window are dropped by age.
CREATE INDEX sync_pushes_received ON sync_pushes (received_at);
