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

-- Products' search vectors are computed by the backend's search indexer in the background, so
-- a 100,000-row import is not slowed by stemming each row as it is written (that made imports
-- 2.7 times slower). A row whose text is new or changed has search = NULL (the import's upsert
-- sets it so); the indexer fills those rows, found through the partial index below. The
-- english configuration stems ("lamps" finds "lamp") and folds case; the title weighs most,
-- then category and SKU, then the description (the expression is in the indexer's statement).
ALTER TABLE products ADD COLUMN search tsvector;

-- fastupdate off: entries go straight into the index as the indexer writes them, instead of a
-- pending list that every search scans until it is merged (after a 100,000-product import that
-- list made each search about 4 ms slower).
CREATE INDEX products_search ON products USING GIN (search) WITH (fastupdate = off);

CREATE INDEX products_search_pending ON products (id) WHERE search IS NULL;

-- Documents are written one at a time through the API: their vector is computed by the
-- database in the same statement, so a search sees a document at once.
ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', body), 'C')
) STORED;

CREATE INDEX documents_search ON documents USING GIN (search);
