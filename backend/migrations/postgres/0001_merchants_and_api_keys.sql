-- Merchants and their API keys.
CREATE TABLE merchants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    allowed_domains JSONB NOT NULL DEFAULT '[]',
    plan            TEXT NOT NULL DEFAULT 'free',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('publishable', 'secret')),
    env          TEXT NOT NULL CHECK (env IN ('test', 'live')),
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    permissions  JSONB NOT NULL DEFAULT '[]',
    name         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at);
