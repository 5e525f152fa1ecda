-- Products' search vectors move to a table of their own. In `products` every updated row version
-- carried its vector, and a row moved to a new page (a price change of a whole catalog) put all
-- of its words into the GIN index again: a 100,000-row price change went from 50-58k to 33-35k
-- rows/s. Now a price or stock change writes only `products`; `product_search` changes only
-- when the indexer indexes new or changed text.
CREATE TABLE product_search (
    product_id  TEXT PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    -- The product's merchant (it never changes): searches filter on it before joining.
    merchant_id TEXT NOT NULL,
    search      tsvector NOT NULL
);

INSERT INTO product_search (product_id, merchant_id, search)
SELECT id, merchant_id, search FROM products WHERE search IS NOT NULL;

-- fastupdate off: entries go straight into the index as the indexer writes them, instead of a
-- pending list that every search scans until it is merged (0004).
CREATE INDEX product_search_vector ON product_search USING GIN (search) WITH (fastupdate = off);

-- TRUE while a product's text is new or changed and not yet indexed: a new row starts so, and
-- the import's upsert sets it when the text changes; the indexer clears it.
ALTER TABLE products ADD COLUMN search_pending BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE products SET search_pending = FALSE WHERE search IS NOT NULL;

DROP INDEX products_search_pending;
DROP INDEX products_search;
ALTER TABLE products DROP COLUMN search;

CREATE INDEX products_search_pending ON products (id) WHERE search_pending;
