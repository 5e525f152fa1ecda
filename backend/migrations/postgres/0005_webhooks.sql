-- Outbound webhooks: the merchant's endpoints, one delivery per (endpoint, event), and every
-- attempt of each delivery.

CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    merchant_id          TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    -- Event types, or ["*"].
    events               JSONB NOT NULL,
    description          TEXT,
    secret               TEXT NOT NULL,
    -- The secret before the last rotation; it signs beside the new one until it expires.
    previous_secret      TEXT,
    previous_expires_at  TIMESTAMPTZ,
    enabled              BOOLEAN NOT NULL,
    disabled_reason      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The exact bytes every attempt sends (and signs).
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- A backend working on the delivery holds it until then; after that (it died), another
    -- backend may take it.
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
    id                TEXT PRIMARY KEY,
    delivery_id       TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at      TIMESTAMPTZ NOT NULL,
    status_code       INTEGER,
    duration_ms       BIGINT NOT NULL,
    error             TEXT,
    response_excerpt  TEXT
);

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);

-- Events not yet turned into deliveries. A flag per event, not a high-water mark of `seq`:
-- on PostgreSQL a transaction that took a lower seq may commit after one that took a higher,
-- and a high-water mark would skip it. Events written before webhooks existed have nowhere to
-- go.
ALTER TABLE events ADD COLUMN fanned_out_at TIMESTAMPTZ;

UPDATE events SET fanned_out_at = created_at;

CREATE INDEX events_fanout_pending ON events (seq) WHERE fanned_out_at IS NULL;
