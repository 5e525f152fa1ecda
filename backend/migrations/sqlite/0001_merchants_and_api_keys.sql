-- Merchants and their API keys. Timestamps are RFC 3339 text; lists are JSON text.
CREATE TABLE merchants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    allowed_domains TEXT NOT NULL DEFAULT '[]',
    plan            TEXT NOT NULL DEFAULT 'free',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('publishable', 'secret')),
    env          TEXT NOT NULL CHECK (env IN ('test', 'live')),
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    permissions  TEXT NOT NULL DEFAULT '[]',
    name         TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at);
