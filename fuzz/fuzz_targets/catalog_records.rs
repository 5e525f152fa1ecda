//! Catalog files through `sync::parse::records`, as CSV and as JSON, with and without a field
//! mapping; every row is read to the end.
//!
//! The input is a catalog file as a merchant would upload it. It may start with one line
//! `#mapping {"sku": …, "title": …}` (a `FieldMapping` as the sync configuration stores it):
//! the rest of the input is then read through that mapping as well as without one. So a
//! seed is a real file, and the fuzzer can change the mapping's column names too.
//!
//! Beyond "no panic, no hang", each row must keep the parser's promises: the n-th row error
//! says row n, a record's fields obey the field rules, no sku is imported twice, and a file
//! never yields more rows than it has bytes.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use mindshop_backend::fuzzing::{FieldMapping, Format, ProductRecord, records};

const MAPPING_LINE: &[u8] = b"#mapping ";

/// The field names a `RowError` may name; `""` is the row as a whole.
const FIELDS: [&str; 8] = [
    "",
    "sku",
    "title",
    "description",
    "price",
    "imageUrl",
    "category",
    "inStock",
];

fuzz_target!(|data: &[u8]| {
    let (mapping, file) = split_mapping(data);
    for format in [Format::Csv, Format::Json] {
        check(format, file, None);
        if let Some(mapping) = &mapping {
            check(format, file, Some(mapping));
        }
    }
});

/// The mapping named by a leading `#mapping {…}` line, and the file after it; a line that is
/// no valid mapping is part of the file.
fn split_mapping(data: &[u8]) -> (Option<FieldMapping>, &[u8]) {
    let Some(rest) = data.strip_prefix(MAPPING_LINE) else {
        return (None, data);
    };
    let (line, file) = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &[][..]),
    };
    match serde_json::from_slice::<FieldMapping>(line) {
        Ok(mapping) => (Some(mapping), file),
        Err(_) => (None, data),
    }
}

fn check(format: Format, file: &[u8], mapping: Option<&FieldMapping>) {
    let Ok(rows) = records(format, file, mapping) else {
        return;
    };
    let mut skus = HashSet::new();
    let mut count: u64 = 0;
    for row in rows {
        count += 1;
        // Every row consumes at least one byte of the file (a CSV record its newline, a JSON
        // element its text): more rows than bytes means the reader is not advancing.
        assert!(
            count <= file.len() as u64 + 1,
            "{count} rows from {} bytes",
            file.len()
        );
        match row {
            Ok(record) => {
                check_record(&record);
                assert!(
                    skus.insert(record.sku.clone()),
                    "sku {:?} imported twice",
                    record.sku
                );
            }
            Err(error) => {
                assert_eq!(error.row, count, "row error numbered out of order: {error:?}");
                assert!(
                    FIELDS.contains(&error.field.as_str()),
                    "unknown field {:?}",
                    error.field
                );
                assert!(!error.message.is_empty(), "row error without a message");
            }
        }
    }
}

/// The field rules of `sync::parse`, as a record that passed them must show.
fn check_record(record: &ProductRecord) {
    let texts = [
        Some(&record.sku),
        Some(&record.title),
        record.description.as_ref(),
        record.image_url.as_ref(),
        record.category.as_ref(),
    ];
    for text in texts.into_iter().flatten() {
        assert!(!text.is_empty(), "an empty text field in {record:?}");
        assert_eq!(text.trim(), text, "an untrimmed text field in {record:?}");
        assert!(!text.contains('\0'), "NUL in {record:?}");
    }
    assert!(record.sku.chars().count() <= 128, "sku too long");
    assert!(
        !record.sku.chars().any(char::is_control),
        "control character in sku {:?}",
        record.sku
    );
    assert!(record.title.chars().count() <= 500, "title too long");
    if let Some(description) = &record.description {
        assert!(description.chars().count() <= 20_000, "description too long");
    }
    if let Some(category) = &record.category {
        assert!(category.chars().count() <= 200, "category too long");
    }
    if let Some(price) = record.price {
        assert!(price.is_finite() && price >= 0.0, "price {price}");
        assert!(price.is_sign_positive(), "price -0 not stored as 0");
    }
    if let Some(url) = &record.image_url {
        assert!(url.chars().count() <= 2048, "imageUrl too long");
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        assert!(
            (lower.starts_with("https://") && url.len() > 8)
                || (lower.starts_with("http://") && url.len() > 7),
            "imageUrl {url:?}"
        );
    }
}
