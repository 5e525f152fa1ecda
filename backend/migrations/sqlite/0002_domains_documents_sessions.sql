-- The allowed-domain index, the knowledge base and chat sessions.

-- One row per (allowed domain, merchant), kept in the same transaction as
-- merchants.allowed_domains, so that "does any merchant allow this host" is a few primary-key
-- lookups (the host and each parent domain) instead of a scan of every merchant's list.
CREATE TABLE merchant_domains (
    domain      TEXT NOT NULL,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    PRIMARY KEY (domain, merchant_id)
) WITHOUT ROWID;

CREATE INDEX merchant_domains_merchant ON merchant_domains (merchant_id);

INSERT OR IGNORE INTO merchant_domains (domain, merchant_id)
SELECT lower(rtrim(domains.value, '.')), merchants.id
FROM merchants, json_each(merchants.allowed_domains) AS domains
WHERE domains.type = 'text' AND rtrim(domains.value, '.') <> '';

CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '[]',
    url         TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Lists are newest first, paged by (created_at, id).
CREATE INDEX documents_merchant_newest ON documents (merchant_id, created_at DESC, id DESC);

CREATE TABLE chat_sessions (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'ended')),
    created_at  TEXT NOT NULL,
    ended_at    TEXT
);

CREATE INDEX chat_sessions_merchant ON chat_sessions (merchant_id, created_at);
