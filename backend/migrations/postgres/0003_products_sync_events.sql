-- The catalog, product sync (configuration and runs) and the events outbox.

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    -- Byte order, as SQLite compares: listings by SKU and their cursors agree on both.
    sku         TEXT COLLATE "C" NOT NULL,
    title       TEXT NOT NULL,
    description TEXT,
    price       DOUBLE PRECISION,
    image_url   TEXT,
    category    TEXT,
    in_stock    BOOLEAN,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (merchant_id, sku)
);

-- One configuration per merchant.
CREATE TABLE sync_configs (
    merchant_id    TEXT PRIMARY KEY REFERENCES merchants (id) ON DELETE CASCADE,
    sync_type      TEXT NOT NULL CHECK (sync_type IN ('scheduled', 'webhook', 'manual')),
    schedule       TEXT,
    source_type    TEXT NOT NULL CHECK (source_type IN ('api', 'ftp', 's3', 'csv')),
    source_url     TEXT,
    field_mapping  JSONB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    webhook_secret TEXT NOT NULL,
    -- Sent with pulls: the Authorization header of an api source, user:password of an ftp
    -- source, access key id:secret of an s3 source. Never shown back.
    source_auth    TEXT,
    -- When a scheduled sync is due next; the backend that advances it runs it.
    next_run_at    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX sync_configs_due ON sync_configs (next_run_at);

CREATE TABLE sync_runs (
    id                 TEXT PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    trigger            TEXT NOT NULL,
    source_type        TEXT NOT NULL,
    mode               TEXT NOT NULL CHECK (mode IN ('upsert', 'replace')),
    started_at         TIMESTAMPTZ NOT NULL,
    completed_at       TIMESTAMPTZ,
    -- Stamped by the backend running it after every batch; a run whose heartbeat stops is
    -- failed by the sweeper instead of staying 'processing' forever.
    heartbeat_at       TIMESTAMPTZ NOT NULL,
    products_processed BIGINT NOT NULL DEFAULT 0,
    products_created   BIGINT NOT NULL DEFAULT 0,
    products_updated   BIGINT NOT NULL DEFAULT 0,
    products_unchanged BIGINT NOT NULL DEFAULT 0,
    products_deleted   BIGINT NOT NULL DEFAULT 0,
    products_failed    BIGINT NOT NULL DEFAULT 0,
    -- The first errors (capped) and how many there were in all.
    errors             JSONB NOT NULL DEFAULT '[]',
    error_count        BIGINT NOT NULL DEFAULT 0,
    failure            TEXT
);

-- History is newest first per merchant.
CREATE INDEX sync_runs_merchant_newest ON sync_runs (merchant_id, started_at DESC, id DESC);
-- One active run per merchant, enforced by the database for every backend.
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (merchant_id)
    WHERE status IN ('pending', 'processing');

-- What happened, written in the same transaction as the change it reports; webhooks deliver
-- from here in `seq` order.
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    data        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX events_merchant ON events (merchant_id, seq);
