//! What the assistant answers from and remembers: full-text search over the merchant's
//! products and documents, and the messages of each session.
//!
//! Search runs in the database (SQLite FTS5 with the porter stemmer; PostgreSQL `tsvector` with
//! the english configuration), indexed in the same transaction as every write, so any backend
//! sees a sync's products as soon as it commits: there is no per-process index to go stale.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::catalog::ProductRow;
use super::documents::DocumentRow;
use super::{Document, Product};

/// A product search: any of `terms` (already normalised words), within the constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuery<'a> {
    pub terms: &'a [String],
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    pub in_stock_only: bool,
    pub limit: u32,
}

/// A search hit and how well it matched (higher is better; comparable within one search).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<T> {
    pub item: T,
    pub score: f64,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub session_id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub recommendations: Value,
    pub sources: Value,
    /// Why an assistant message stops before the model's end (`null` when it is whole).
    pub cut_short: Option<CutShort>,
    pub created_at: DateTime<Utc>,
}

/// Why an answer was stored as far as it got rather than whole; its label is the one word
/// that messages, `chat.completed` events, metrics and the migration's CHECK share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutShort {
    /// The shopper closed the stream before the answer ended; the model was stopped.
    ClientClosed,
    /// The answer ran past `chat.llm_total_timeout_secs`; the model was stopped.
    TimedOut,
}

impl CutShort {
    pub const ALL: [CutShort; 2] = [CutShort::ClientClosed, CutShort::TimedOut];

    pub fn label(self) -> &'static str {
        match self {
            CutShort::ClientClosed => "client_closed",
            CutShort::TimedOut => "timed_out",
        }
    }

    pub fn from_label(label: &str) -> Option<CutShort> {
        CutShort::ALL.into_iter().find(|cut| cut.label() == label)
    }
}

impl Serialize for CutShort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

/// A question and its answer, stored together with their `chat.completed` event.
#[derive(Debug, Clone)]
pub struct NewExchange {
    pub merchant_id: String,
    pub session_id: String,
    pub question: String,
    pub answer: String,
    /// Set when `answer` is only what the model wrote before it was stopped.
    pub cut_short: Option<CutShort>,
    pub recommendations: Value,
    pub sources: Value,
    /// The event's data.
    pub event: Value,
}

/// Matches a product search first takes from SQLite's index, best ranked (see
/// `sql::SQLITE_SEARCH_PRODUCTS`).
pub(super) const SQLITE_SEARCH_CANDIDATES: i64 = 1000;
/// The same on PostgreSQL, where each candidate costs an index lookup in `products` (see
/// `sql::PG_SEARCH_PRODUCTS`): 1,000 made the p99 of retrieval 12.8 ms.
pub(super) const PG_SEARCH_CANDIDATES: i64 = 200;

/// How the words of a search combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operator {
    Any,
    Every,
}

/// Products matching every word first (best first), then, when there are fewer than
/// `limit`, those matching some of the words, scored below every product of the first tier
/// (their order kept), so scores stay comparable within one search.
pub(super) fn merge_tiers(
    mut every: Vec<Scored<Product>>,
    any: Vec<Scored<Product>>,
    limit: usize,
) -> Vec<Scored<Product>> {
    let floor = every
        .iter()
        .map(|scored| scored.score)
        .fold(f64::INFINITY, f64::min);
    let top = any
        .iter()
        .map(|scored| scored.score)
        .fold(0.0_f64, f64::max);
    for mut scored in any {
        if every.len() >= limit {
            break;
        }
        if every.iter().any(|kept| kept.item.sku == scored.item.sku) {
            continue;
        }
        if floor.is_finite() && top > 0.0 {
            scored.score = floor * 0.5 * (scored.score / top);
        }
        every.push(scored);
    }
    every
}

/// Only words the search syntax of either database reads as plain words.
pub(super) fn safe_terms(terms: &[String]) -> Vec<&str> {
    terms
        .iter()
        .map(String::as_str)
        .filter(|term| !term.is_empty() && term.chars().all(char::is_alphanumeric))
        .collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct ScoredProductRow {
    #[sqlx(flatten)]
    pub row: ProductRow,
    pub score: f64,
}

#[derive(sqlx::FromRow)]
pub(super) struct ScoredDocumentRow {
    #[sqlx(flatten)]
    pub row: DocumentRow,
    pub score: f64,
}

impl From<ScoredProductRow> for Scored<Product> {
    fn from(scored: ScoredProductRow) -> Self {
        Self {
            item: scored.row.into(),
            score: scored.score,
        }
    }
}

impl From<ScoredDocumentRow> for Scored<Document> {
    fn from(scored: ScoredDocumentRow) -> Self {
        Self {
            item: scored.row.into(),
            score: scored.score,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ChatMessageRow {
    id: String,
    session_id: String,
    role: String,
    content: String,
    recommendations: sqlx::types::Json<Value>,
    sources: sqlx::types::Json<Value>,
    cut_short: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<ChatMessageRow> for ChatMessage {
    fn from(row: ChatMessageRow) -> Self {
        Self {
            id: row.id,
            session_id: row.session_id,
            role: row.role,
            content: row.content,
            recommendations: row.recommendations.0,
            sources: row.sources.0,
            // The column's CHECK admits only the labels.
            cut_short: row.cut_short.as_deref().and_then(CutShort::from_label),
            created_at: row.created_at,
        }
    }
}

pub(super) mod sql {
    pub const INSERT_MESSAGE: &str = "INSERT INTO chat_messages (id, session_id, merchant_id, role, content, \
         recommendations, sources, cut_short, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    pub const LIST_MESSAGES: &str = "SELECT * FROM chat_messages WHERE merchant_id = $1 AND session_id = $2 \
         ORDER BY created_at, id LIMIT 1000";
    /// Products within the constraints, cheapest first, for questions with no search words.
    pub const FILTER_PRODUCTS: &str = "SELECT *, CAST(0.0 AS DOUBLE PRECISION) AS score FROM products WHERE merchant_id = $1 \
         AND ($2 IS NULL OR price >= $2) AND ($3 IS NULL OR price <= $3) \
         AND ($4 = FALSE OR in_stock = TRUE) ORDER BY price IS NULL, price, sku LIMIT $5";
    /// A product search over SQLite's FTS5 index: `$7` matches come from the index first, in
    /// the order `$order` gives (what stands between the match and the cap), then are joined to
    /// their products and filtered. `CROSS JOIN` keeps the index as the outer loop (otherwise
    /// SQLite may walk every product of the merchant and probe the index for each).
    macro_rules! sqlite_search_products {
        ($order:literal) => {
            concat!(
                "SELECT p.*, -hits.rank AS score \
                 FROM (SELECT rowid, rank FROM products_search WHERE products_search MATCH $1 ",
                $order,
                "LIMIT $7) AS hits \
                 CROSS JOIN products p ON p.rowid = hits.rowid \
                 WHERE p.merchant_id = $2 \
                 AND ($3 IS NULL OR p.price >= $3) AND ($4 IS NULL OR p.price <= $4) \
                 AND ($5 = FALSE OR p.in_stock = TRUE) \
                 ORDER BY hits.rank, p.sku LIMIT $6"
            )
        };
    }
    /// The `$7` best matches by rank (bm25 with the column weights the migration sets). The best
    /// `$6` of those that pass are exactly the best `$6` of all matches that pass whenever at
    /// least `$6` do (every match outside the `$7` ranks below all inside); when fewer do, the
    /// caller asks again without the cap.
    pub const SQLITE_SEARCH_PRODUCTS: &str = sqlite_search_products!("ORDER BY rank ");
    /// The broader steps (one word, any word): the first `$7` matches in the index's order,
    /// ranked among themselves. FTS5 computes a match's rank only when it is read, so this
    /// ranks 1,000 matches where ordering by rank ranks them all (7,500 for two common words);
    /// the best `$6` that pass are then the best of those 1,000, not of all matches.
    pub const SQLITE_SEARCH_PRODUCTS_BROADER: &str = sqlite_search_products!("");
    pub const SQLITE_SEARCH_DOCUMENTS: &str = "SELECT d.*, -bm25(documents_search, 5.0, 1.0, 2.0) AS score \
         FROM documents_search CROSS JOIN documents d ON d.rowid = documents_search.rowid \
         WHERE documents_search MATCH $1 AND d.merchant_id = $2 \
         ORDER BY bm25(documents_search, 5.0, 1.0, 2.0), d.id LIMIT $3";
    /// A product search over PostgreSQL's `product_search` (which carries the merchant, so the
    /// tenant filter applies before anything else): `$7` matches, in the order `$order` gives,
    /// then joined to their products and filtered, as on SQLite.
    macro_rules! pg_search_products {
        ($order:literal) => {
            concat!(
                "SELECT p.*, hits.score \
                 FROM (SELECT s.product_id, ts_rank(s.search, q)::float8 AS score \
                 FROM product_search s, to_tsquery('english', $1) q \
                 WHERE s.merchant_id = $2 AND s.search @@ q ",
                $order,
                "LIMIT $7) AS hits \
                 JOIN products p ON p.id = hits.product_id \
                 WHERE p.merchant_id = $2 \
                 AND ($3::float8 IS NULL OR p.price >= $3) AND ($4::float8 IS NULL OR p.price <= $4) \
                 AND ($5 = FALSE OR p.in_stock = TRUE) \
                 ORDER BY hits.score DESC, p.sku LIMIT $6"
            )
        };
    }
    /// The `$7` best matches by rank, with the same guarantee as [`SQLITE_SEARCH_PRODUCTS`].
    /// Joining every match instead cost an index lookup per match (2,500 for "speaker" in the
    /// chat bench), which doubled the p99 of retrieval.
    pub const PG_SEARCH_PRODUCTS: &str = pg_search_products!("ORDER BY score DESC ");
    /// The broader steps (one word, any word): the first `$7` matches in the index's order,
    /// ranked among themselves, as on SQLite ([`SQLITE_SEARCH_PRODUCTS_BROADER`]). Ranking all
    /// 2,500 matches of "speaker" to keep the best 200 took most of the 10 ms the slowest
    /// question spent.
    pub const PG_SEARCH_PRODUCTS_BROADER: &str = pg_search_products!("");
    pub const PG_SEARCH_DOCUMENTS: &str = "SELECT d.*, ts_rank(d.search, q)::float8 AS score \
         FROM documents d, to_tsquery('english', $1) q \
         WHERE d.merchant_id = $2 AND d.search @@ q ORDER BY score DESC, d.id LIMIT $3";
}

#[cfg(test)]
mod tests {
    use super::CutShort;

    #[test]
    fn a_cut_short_reads_back_from_its_label_and_is_shown_as_it() {
        for cut in CutShort::ALL {
            assert_eq!(CutShort::from_label(cut.label()), Some(cut));
            assert_eq!(serde_json::to_value(cut).unwrap(), cut.label());
        }
        assert_eq!(CutShort::from_label("cut"), None);
    }
}
