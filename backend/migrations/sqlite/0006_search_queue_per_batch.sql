-- New products are queued for the search indexer by the import itself, one statement per batch
-- of 1,000 rows (`SqliteStore::write_products`: the rows whose rowid is above the largest before
-- the batch), instead of by a trigger that ran once per inserted row: the trigger made a
-- 100,000-row first import about 20% slower. Text changes and deletions are rarer and keep their
-- triggers (0004).
DROP TRIGGER products_search_insert;
