-- Conversations, and full-text search over the catalog and the knowledge base.

CREATE TABLE chat_messages (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    recommendations JSONB NOT NULL DEFAULT '[]',
    sources         JSONB NOT NULL DEFAULT '[]',
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at, id);

-- Search vectors computed by the database in the same statement as each write, so a search
-- right after a sync sees it. The english configuration stems ("lamps" finds "lamp") and folds
-- case; the title weighs most, then category and SKU, then the description.
ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', coalesce(category, '') || ' ' || sku), 'B')
    || setweight(to_tsvector('english', coalesce(description, '')), 'C')
) STORED;

CREATE INDEX products_search ON products USING GIN (search);

ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', body), 'C')
) STORED;

CREATE INDEX documents_search ON documents USING GIN (search);
