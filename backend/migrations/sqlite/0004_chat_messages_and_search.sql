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

-- Products are searched through an FTS5 index that the backend's search indexer fills in the
-- background, so a 100,000-row import is not slowed by indexing each row as it is written (that
-- halved import speed). Triggers only note which rows changed, in the import's transaction; the
-- indexer reads the queue, re-indexes those rows from the table and empties it. The index holds
-- no copy of the text (content='') and forgets a row by its rowid alone (contentless_delete), so
-- a row that changed again before it was indexed needs no old values.
-- The porter stemmer makes "lamps" find "lamp"; unicode61 folds case and accents.
CREATE VIRTUAL TABLE products_search USING fts5(
    title, category, sku, description,
    content = '', contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- (The triggers check for a queued row rather than use INSERT OR IGNORE: inside a trigger
-- fired by an upsert, SQLite applies the upsert's conflict handling, not the trigger's.)
-- Ranked by bm25 with the title weighing most, then category and SKU, then the description;
-- searches order by `rank`, which FTS5 sorts inside the index.
INSERT INTO products_search (products_search, rank) VALUES ('rank', 'bm25(10.0, 4.0, 4.0, 1.0)');

CREATE TABLE products_search_queue (product_rowid INTEGER PRIMARY KEY);

INSERT INTO products_search_queue (product_rowid) SELECT rowid FROM products;

CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_search_queue (product_rowid) SELECT new.rowid
    WHERE NOT EXISTS (SELECT 1 FROM products_search_queue WHERE product_rowid = new.rowid);
END;

CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_search_queue (product_rowid) SELECT old.rowid
    WHERE NOT EXISTS (SELECT 1 FROM products_search_queue WHERE product_rowid = old.rowid);
END;

-- Only a change to an indexed column re-indexes (a price update does not; an upsert sets every
-- column, so the trigger compares the values).
CREATE TRIGGER products_search_update AFTER UPDATE OF title, category, sku, description ON products
WHEN old.title IS NOT new.title OR old.category IS NOT new.category OR old.sku IS NOT new.sku
    OR old.description IS NOT new.description
BEGIN
    INSERT INTO products_search_queue (product_rowid) SELECT new.rowid
    WHERE NOT EXISTS (SELECT 1 FROM products_search_queue WHERE product_rowid = new.rowid);
END;

-- Documents are written one at a time through the API: their index follows in the same
-- transaction (external content, kept by triggers), so a search sees a document at once.
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
