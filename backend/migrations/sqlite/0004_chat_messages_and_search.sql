-- Conversations, and full-text search over the catalog and the knowledge base.

CREATE TABLE chat_messages (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    recommendations TEXT NOT NULL DEFAULT '[]',
    sources         TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL
);

CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at, id);

-- FTS5 indexes that read their text from the tables (external content) and are kept current
-- by triggers in the same transaction as each write, so a search right after a sync sees it.
-- The porter stemmer makes "lamps" find "lamp"; unicode61 folds case and accents.
CREATE VIRTUAL TABLE products_search USING fts5(
    title, category, sku, description,
    content = 'products', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO products_search (rowid, title, category, sku, description)
SELECT rowid, title, category, sku, description FROM products;

CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_search (rowid, title, category, sku, description)
    VALUES (new.rowid, new.title, new.category, new.sku, new.description);
END;

CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_search (products_search, rowid, title, category, sku, description)
    VALUES ('delete', old.rowid, old.title, old.category, old.sku, old.description);
END;

-- Only a change to an indexed column re-indexes (a price update does not; an upsert sets every
-- column, so the trigger compares the values).
CREATE TRIGGER products_search_update AFTER UPDATE OF title, category, sku, description ON products
WHEN old.title IS NOT new.title OR old.category IS NOT new.category OR old.sku IS NOT new.sku
    OR old.description IS NOT new.description
BEGIN
    INSERT INTO products_search (products_search, rowid, title, category, sku, description)
    VALUES ('delete', old.rowid, old.title, old.category, old.sku, old.description);
    INSERT INTO products_search (rowid, title, category, sku, description)
    VALUES (new.rowid, new.title, new.category, new.sku, new.description);
END;

CREATE VIRTUAL TABLE documents_search USING fts5(
    title, body, tags,
    content = 'documents', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO documents_search (rowid, title, body, tags)
SELECT rowid, title, body, tags FROM documents;

CREATE TRIGGER documents_search_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_search (rowid, title, body, tags)
    VALUES (new.rowid, new.title, new.body, new.tags);
END;

CREATE TRIGGER documents_search_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_search (documents_search, rowid, title, body, tags)
    VALUES ('delete', old.rowid, old.title, old.body, old.tags);
END;

CREATE TRIGGER documents_search_update AFTER UPDATE OF title, body, tags ON documents BEGIN
    INSERT INTO documents_search (documents_search, rowid, title, body, tags)
    VALUES ('delete', old.rowid, old.title, old.body, old.tags);
    INSERT INTO documents_search (rowid, title, body, tags)
    VALUES (new.rowid, new.title, new.body, new.tags);
END;
