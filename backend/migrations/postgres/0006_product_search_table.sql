-- Products' search vectors move to a table of their own. In `products` every updated row version
-- carried its vector, and a row moved to a new page (a price change of a whole catalog) put all
-- of its words into the GIN index again: a 100,000-row price change went from 50-58k to 33-35k
-- rows/s. Now a price or stock change writes only `products`; `product_search` changes only
-- when the indexer indexes new or changed text.
-- No foreign key: checking one for each row the indexer writes locked that product row again
-- and doubled the indexing time of a first import. A product's vector goes with it through the
-- trigger below instead (deleting a merchant deletes its products, which fires it too).
CREATE TABLE product_search (
    product_id  TEXT PRIMARY KEY,
    -- The product's merchant (it never changes): searches filter on it before joining.
    merchant_id TEXT NOT NULL,
    search      tsvector NOT NULL
);

CREATE FUNCTION product_search_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM product_search WHERE product_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

-- Once per statement, for all the rows it deleted (a sync's removals come in one statement).
CREATE TRIGGER products_search_forget AFTER DELETE ON products
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION product_search_forget();

INSERT INTO product_search (product_id, merchant_id, search)
SELECT id, merchant_id, search FROM products WHERE search IS NOT NULL;

-- fastupdate on: the indexer's vectors go to the index's pending list, and the indexer merges
-- the list into the index after each pass (gin_clean_pending_list, in one sorted pass), which is
-- faster than inserting each vector's words one by one. Searches scan the pending list only
-- while a pass runs (0004 turned it off because nothing merged it: every search scanned it).
CREATE INDEX product_search_vector ON product_search USING GIN (search) WITH (fastupdate = on);

-- TRUE while a product's text is new or changed and not yet indexed: a new row starts so, and
-- the import's upsert sets it when the text changes; the indexer clears it.
ALTER TABLE products ADD COLUMN search_pending BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE products SET search_pending = FALSE WHERE search IS NOT NULL;

DROP INDEX products_search_pending;
DROP INDEX products_search;
ALTER TABLE products DROP COLUMN search;

CREATE INDEX products_search_pending ON products (id) WHERE search_pending;
