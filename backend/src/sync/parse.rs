//! Catalog files → product records: CSV or JSON, through the merchant's field mapping, each bad
//! row explained.
//!
//! A whole file is refused ([`FileError`]) only when no row could be read: empty input, a CSV
//! header without a mapped column, JSON that does not parse or has the wrong shape. Otherwise
//! every row comes out in order, either as a [`ProductRecord`] or as one [`RowError`] naming
//! the row's first failing field, so one bad row never stops an import. A field with NUL
//! (U+0000) is such a row error, like any other bad value.
//!
//! CSV streams: rows are read one at a time into one reused `ByteRecord`, and only the fields a
//! mapping uses are checked as UTF-8 (an unused column in another encoding does no harm). JSON
//! is parsed whole, then walked element by element.

use std::borrow::Cow;
use std::collections::HashMap;

use csv::ByteRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Which source column (CSV header / JSON key) feeds each product field; stored with the sync
/// configuration and shown as `{"sku": …, "title": …, "imageUrl": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    pub sku: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<String>,
}

/// The file formats an upload or a pull may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// One valid product row, ready to upsert by (merchant, sku).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub sku: String,
    pub title: String,
    pub description: Option<String>,
    pub price: Option<f64>,
    pub image_url: Option<String>,
    pub category: Option<String>,
    pub in_stock: Option<bool>,
}

/// Why one row was not imported. `row` is the 1-based position of the product in the file
/// (a CSV header is not counted); `field` is the target field (`sku`, `price`, …), or `""`
/// when the row as a whole is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

/// Why a whole file was refused (400, nothing written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("The file is empty")]
    Empty,
    #[error("{0}")]
    Malformed(String),
}

/// The rows of a file, in order.
pub type Records<'a> = Box<dyn Iterator<Item = Result<ProductRecord, RowError>> + Send + 'a>;

/// Reads `bytes` as `format`. `mapping: None` means columns named like the targets.
pub fn records<'a>(
    format: Format,
    bytes: &'a [u8],
    mapping: Option<&'a FieldMapping>,
) -> Result<Records<'a>, FileError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(FileError::Malformed(
            "the file is UTF-16 encoded; save it as UTF-8".to_owned(),
        ));
    }
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if bytes.trim_ascii().is_empty() {
        return Err(FileError::Empty);
    }
    let sources = sources(mapping);
    match format {
        Format::Csv => Ok(Box::new(CsvRows::new(bytes, &sources)?)),
        Format::Json => Ok(Box::new(JsonRows::new(bytes, sources)?)),
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

const MAX_SKU_CHARS: usize = 128;
const MAX_TITLE_CHARS: usize = 500;
const MAX_DESCRIPTION_CHARS: usize = 20_000;
const MAX_IMAGE_URL_CHARS: usize = 2048;
const MAX_CATEGORY_CHARS: usize = 200;
/// How much of an offending value a message quotes.
const QUOTED_CHARS: usize = 40;

/// A product field, in the order a row's fields are checked (its first failure is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sku,
    Title,
    Description,
    Price,
    ImageUrl,
    Category,
    InStock,
}

impl Target {
    const ALL: [Target; 7] = [
        Target::Sku,
        Target::Title,
        Target::Description,
        Target::Price,
        Target::ImageUrl,
        Target::Category,
        Target::InStock,
    ];

    /// The name in `RowError::field`, and the default column name without a mapping.
    fn name(self) -> &'static str {
        match self {
            Target::Sku => "sku",
            Target::Title => "title",
            Target::Description => "description",
            Target::Price => "price",
            Target::ImageUrl => "imageUrl",
            Target::Category => "category",
            Target::InStock => "inStock",
        }
    }
}

/// Where one target's value comes from.
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    /// The CSV header name or JSON key.
    column: &'a str,
    /// Whether a CSV header without this column refuses the file (every mapped column, or
    /// `sku` and `title` without a mapping).
    required: bool,
}

/// One source per target, indexed by `Target as usize`; `None` = not imported.
type Sources<'a> = [Option<Source<'a>>; 7];

fn sources(mapping: Option<&FieldMapping>) -> Sources<'_> {
    let Some(m) = mapping else {
        return Target::ALL.map(|target| {
            Some(Source {
                column: target.name(),
                required: matches!(target, Target::Sku | Target::Title),
            })
        });
    };
    fn mapped(column: &Option<String>) -> Option<Source<'_>> {
        column.as_deref().map(|column| Source {
            column,
            required: true,
        })
    }
    [
        Some(Source {
            column: &m.sku,
            required: true,
        }),
        Some(Source {
            column: &m.title,
            required: true,
        }),
        mapped(&m.description),
        mapped(&m.price),
        mapped(&m.image_url),
        mapped(&m.category),
        mapped(&m.in_stock),
    ]
}

/// A field's value as the file gave it, before the target's rules.
#[derive(Debug, Clone, Copy)]
enum Raw<'v> {
    Text(&'v str),
    Number(&'v Number),
    Bool(bool),
    /// A JSON array or object (`"an array"`, `"an object"`), never a valid field value.
    Nested(&'static str),
}

/// A row's field lookup: `Ok(None)` when the field is absent, `Err(message)` when it cannot
/// be read at all.
type FieldResult<'v> = Result<Option<Raw<'v>>, String>;

// --- CSV ---------------------------------------------------------------------------------

/// The data rows of a CSV file, read one at a time.
struct CsvRows<'a> {
    reader: csv::Reader<&'a [u8]>,
    /// Reused for every row so reading allocates nothing once it has grown to the widest row.
    record: ByteRecord,
    /// The column index of each target.
    columns: [Option<usize>; 7],
    width: usize,
    row: u64,
    seen: SeenSkus,
    done: bool,
}

impl<'a> CsvRows<'a> {
    fn new(bytes: &'a [u8], sources: &Sources<'_>) -> Result<Self, FileError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(bytes);
        let header = reader
            .byte_headers()
            .map_err(|e| FileError::Malformed(format!("the header row could not be read: {e}")))?;
        let mut columns = [None; 7];
        for (target, source) in Target::ALL.into_iter().zip(sources) {
            let Some(source) = source else { continue };
            columns[target as usize] = header_column(header, *source, target)?;
        }
        let width = header.len();
        Ok(CsvRows {
            reader,
            record: ByteRecord::new(),
            columns,
            width,
            row: 0,
            seen: SeenSkus::default(),
            done: false,
        })
    }
}

/// The index of `source.column` in the header (names compared after trimming).
fn header_column(
    header: &ByteRecord,
    source: Source<'_>,
    target: Target,
) -> Result<Option<usize>, FileError> {
    let wanted = source.column.trim();
    let mut found = header
        .iter()
        .enumerate()
        .filter(|(_, name)| std::str::from_utf8(name).is_ok_and(|name| name.trim() == wanted))
        .map(|(index, _)| index);
    let first = found.next();
    if found.next().is_some() {
        return Err(FileError::Malformed(format!(
            "column {wanted:?} appears more than once in the header"
        )));
    }
    if first.is_none() && source.required {
        return Err(FileError::Malformed(format!(
            "column {wanted:?} (mapped to {}) is not in the header",
            target.name()
        )));
    }
    Ok(first)
}

impl Iterator for CsvRows<'_> {
    type Item = Result<ProductRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    // Reading from memory does not fail; should it, stop rather than loop.
                    self.done = true;
                    return Some(Err(RowError {
                        row: self.row + 1,
                        field: String::new(),
                        message: format!("the rest of the file could not be read: {e}"),
                    }));
                }
            }
            // Rows of only separators and spaces (spreadsheet exports end with them) carry no
            // product: skipped and not counted, like the blank lines the reader drops itself.
            if self
                .record
                .iter()
                .all(|field| field.trim_ascii().is_empty())
            {
                continue;
            }
            self.row += 1;
            if self.record.len() != self.width {
                return Some(Err(RowError {
                    row: self.row,
                    field: String::new(),
                    message: format!(
                        "expected {} columns, found {}",
                        self.width,
                        self.record.len()
                    ),
                }));
            }
            let (record, columns) = (&self.record, &self.columns);
            let field = |target: Target| csv_field(record, columns[target as usize], target);
            return Some(product(self.row, field, &mut self.seen));
        }
        None
    }
}

/// Only the fields a row uses are checked as UTF-8.
fn csv_field(record: &ByteRecord, column: Option<usize>, target: Target) -> FieldResult<'_> {
    let Some(bytes) = column.and_then(|i| record.get(i)) else {
        return Ok(None);
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some(Raw::Text(text))),
        Err(_) => Err(format!(
            "{} is not valid UTF-8 text; save the file as UTF-8",
            target.name()
        )),
    }
}

// --- JSON --------------------------------------------------------------------------------

/// The elements of a JSON product array.
struct JsonRows<'a> {
    items: std::vec::IntoIter<Value>,
    sources: Sources<'a>,
    row: u64,
    seen: SeenSkus,
}

impl<'a> JsonRows<'a> {
    fn new(bytes: &[u8], sources: Sources<'a>) -> Result<Self, FileError> {
        let value: Value = serde_json::from_slice(bytes).map_err(json_error)?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut object) => match object.remove("products") {
                Some(Value::Array(items)) => items,
                Some(_) => {
                    return Err(FileError::Malformed(
                        "\"products\" must be an array of product objects".to_owned(),
                    ));
                }
                None => return Err(wrong_json_shape()),
            },
            _ => return Err(wrong_json_shape()),
        };
        Ok(JsonRows {
            items: items.into_iter(),
            sources,
            row: 0,
            seen: SeenSkus::default(),
        })
    }
}

fn wrong_json_shape() -> FileError {
    FileError::Malformed("expected a JSON array of products or {\"products\": [...]}".to_owned())
}

/// serde_json's message with its position up front and no doubled suffix.
fn json_error(e: serde_json::Error) -> FileError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full);
    FileError::Malformed(format!(
        "invalid JSON at line {} column {}: {reason}",
        e.line(),
        e.column()
    ))
}

impl Iterator for JsonRows<'_> {
    type Item = Result<ProductRecord, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.next()?;
        self.row += 1;
        let Value::Object(object) = &item else {
            return Some(Err(RowError {
                row: self.row,
                field: String::new(),
                message: "expected an object".to_owned(),
            }));
        };
        let sources = &self.sources;
        let field =
            |target: Target| Ok(sources[target as usize].and_then(|s| json_field(object, s)));
        Some(product(self.row, field, &mut self.seen))
    }
}

fn json_field<'v>(object: &'v Map<String, Value>, source: Source<'_>) -> Option<Raw<'v>> {
    match object.get(source.column)? {
        Value::Null => None,
        Value::String(text) => Some(Raw::Text(text)),
        Value::Number(number) => Some(Raw::Number(number)),
        Value::Bool(value) => Some(Raw::Bool(*value)),
        Value::Array(_) => Some(Raw::Nested("an array")),
        Value::Object(_) => Some(Raw::Nested("an object")),
    }
}

// --- One row -----------------------------------------------------------------------------

/// Applies the field rules to one row, in `Target` order; the first failure is the row's error.
fn product<'v>(
    row: u64,
    field: impl Fn(Target) -> FieldResult<'v>,
    seen: &mut SeenSkus,
) -> Result<ProductRecord, RowError> {
    let fail = |target: Target, message: String| RowError {
        row,
        field: target.name().to_owned(),
        message,
    };
    // NUL first, whatever the field: no database column could hold it (see `crate::text`).
    let read = |target: Target| match field(target) {
        Ok(Some(Raw::Text(text))) if text.contains('\0') => Err(fail(
            target,
            format!("{} {}", target.name(), crate::text::NUL_REFUSED),
        )),
        other => other.map_err(|message| fail(target, message)),
    };

    let sku = required_text(Target::Sku, read(Target::Sku)?, MAX_SKU_CHARS)
        .map_err(|m| fail(Target::Sku, m))?;
    if sku.chars().any(char::is_control) {
        return Err(fail(
            Target::Sku,
            "sku must not contain control characters".to_owned(),
        ));
    }
    if let Some(first) = seen.first_row(&sku, row) {
        return Err(fail(
            Target::Sku,
            format!("duplicate sku {} (first at row {first})", quoted(&sku)),
        ));
    }
    let title = required_text(Target::Title, read(Target::Title)?, MAX_TITLE_CHARS)
        .map_err(|m| fail(Target::Title, m))?;
    let description = optional_text(
        Target::Description,
        read(Target::Description)?,
        MAX_DESCRIPTION_CHARS,
    )
    .map_err(|m| fail(Target::Description, m))?;
    let price = price(read(Target::Price)?).map_err(|m| fail(Target::Price, m))?;
    let image_url = image_url(read(Target::ImageUrl)?).map_err(|m| fail(Target::ImageUrl, m))?;
    let category = optional_text(
        Target::Category,
        read(Target::Category)?,
        MAX_CATEGORY_CHARS,
    )
    .map_err(|m| fail(Target::Category, m))?;
    let in_stock = in_stock(read(Target::InStock)?).map_err(|m| fail(Target::InStock, m))?;

    Ok(ProductRecord {
        sku: sku.into_owned(),
        title: title.into_owned(),
        description: description.map(Cow::into_owned),
        price,
        image_url: image_url.map(Cow::into_owned),
        category: category.map(Cow::into_owned),
        in_stock,
    })
}

/// A text field, trimmed; JSON numbers as their JSON text (`1001` → `"1001"`).
fn text(target: Target, raw: Raw<'_>) -> Result<Cow<'_, str>, String> {
    match raw {
        Raw::Text(text) => Ok(Cow::Borrowed(text.trim())),
        Raw::Number(number) => Ok(Cow::Owned(number.to_string())),
        Raw::Bool(value) => Err(format!("{} must be text, got {value}", target.name())),
        Raw::Nested(kind) => Err(format!("{} must be text, got {kind}", target.name())),
    }
}

fn required_text(target: Target, raw: Option<Raw<'_>>, max: usize) -> Result<Cow<'_, str>, String> {
    match optional_text(target, raw, max)? {
        Some(text) => Ok(text),
        None => Err(format!("{} is required", target.name())),
    }
}

/// `None` when absent or blank after trimming.
fn optional_text(
    target: Target,
    raw: Option<Raw<'_>>,
    max: usize,
) -> Result<Option<Cow<'_, str>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let text = text(target, raw)?;
    if text.is_empty() {
        return Ok(None);
    }
    // Bytes bound chars from above: count only when it could matter.
    if text.len() > max {
        let chars = text.chars().count();
        if chars > max {
            return Err(format!(
                "{} must be at most {max} characters, got {chars}",
                target.name()
            ));
        }
    }
    Ok(Some(text))
}

fn price(raw: Option<Raw<'_>>) -> Result<Option<f64>, String> {
    let value = match raw {
        None => return Ok(None),
        // serde_json numbers are finite by construction (it refuses `1e999` as out of range).
        Some(Raw::Number(number)) => number
            .as_f64()
            .ok_or_else(|| format!("price must be a number, got {number}"))?,
        Some(Raw::Text(text)) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            // Plain decimal notation only: `f64::from_str` also takes "NaN", "inf", "infinity".
            let decimal = text
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-' | b'e' | b'E'));
            let value = decimal
                .then(|| text.parse::<f64>().ok())
                .flatten()
                .ok_or_else(|| format!("price must be a number, got {}", quoted(text)))?;
            if !value.is_finite() {
                return Err(format!(
                    "price must be a finite number, got {}",
                    quoted(text)
                ));
            }
            value
        }
        Some(Raw::Bool(value)) => return Err(format!("price must be a number, got {value}")),
        Some(Raw::Nested(kind)) => return Err(format!("price must be a number, got {kind}")),
    };
    if value < 0.0 {
        return Err("price must not be negative".to_owned());
    }
    // `-0` is a valid zero; store it as `0`.
    Ok(Some(if value == 0.0 { 0.0 } else { value }))
}

fn image_url(raw: Option<Raw<'_>>) -> Result<Option<Cow<'_, str>>, String> {
    let Some(url) = optional_text(Target::ImageUrl, raw, MAX_IMAGE_URL_CHARS)? else {
        return Ok(None);
    };
    let rest = strip_prefix_ignore_ascii_case(&url, "https://")
        .or_else(|| strip_prefix_ignore_ascii_case(&url, "http://"));
    if rest.is_none_or(str::is_empty) {
        return Err(format!(
            "imageUrl must start with http:// or https://, got {}",
            quoted(&url)
        ));
    }
    Ok(Some(url))
}

fn strip_prefix_ignore_ascii_case<'s>(text: &'s str, prefix: &str) -> Option<&'s str> {
    // `get` returns `None` rather than split a character.
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

const IN_STOCK_WORDS: [&str; 5] = ["true", "yes", "1", "y", "in stock"];
const OUT_OF_STOCK_WORDS: [&str; 5] = ["false", "no", "0", "n", "out of stock"];

fn in_stock(raw: Option<Raw<'_>>) -> Result<Option<bool>, String> {
    const EXPECTED: &str = "inStock must be true/false, yes/no, 1/0, y/n or in stock/out of stock";
    match raw {
        None => Ok(None),
        Some(Raw::Bool(value)) => Ok(Some(value)),
        Some(Raw::Number(number)) => match number.as_u64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(format!("{EXPECTED}, got {number}")),
        },
        Some(Raw::Text(text)) => {
            let text = text.trim();
            let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(text));
            if text.is_empty() {
                Ok(None)
            } else if is(&IN_STOCK_WORDS) {
                Ok(Some(true))
            } else if is(&OUT_OF_STOCK_WORDS) {
                Ok(Some(false))
            } else {
                Err(format!("{EXPECTED}, got {}", quoted(text)))
            }
        }
        Some(Raw::Nested(kind)) => Err(format!("{EXPECTED}, got {kind}")),
    }
}

/// `value` in double quotes for a message, cut to `QUOTED_CHARS` characters.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}", format!("{}…", &value[..end])),
        None => format!("{value:?}"),
    }
}

// --- Duplicates --------------------------------------------------------------------------

/// The skus seen so far in one file and the row of each one's first occurrence.
#[derive(Default)]
struct SeenSkus(HashMap<Box<str>, u64>);

impl SeenSkus {
    /// The row where `sku` first appeared; or `None`, remembering `row` as its first.
    fn first_row(&mut self, sku: &str, row: u64) -> Option<u64> {
        if let Some(first) = self.0.get(sku) {
            return Some(*first);
        }
        self.0.insert(sku.into(), row);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = Result<ProductRecord, RowError>;

    fn read(format: Format, bytes: &[u8], mapping: Option<&FieldMapping>) -> Vec<Row> {
        match records(format, bytes, mapping) {
            Ok(rows) => rows.collect(),
            Err(e) => panic!("file refused: {e}"),
        }
    }

    fn csv(text: &str) -> Vec<Row> {
        read(Format::Csv, text.as_bytes(), None)
    }

    fn json(text: &str) -> Vec<Row> {
        read(Format::Json, text.as_bytes(), None)
    }

    fn refused(format: Format, bytes: &[u8], mapping: Option<&FieldMapping>) -> FileError {
        match records(format, bytes, mapping) {
            Ok(_) => panic!("file accepted"),
            Err(e) => e,
        }
    }

    fn product(sku: &str, title: &str) -> ProductRecord {
        ProductRecord {
            sku: sku.to_owned(),
            title: title.to_owned(),
            description: None,
            price: None,
            image_url: None,
            category: None,
            in_stock: None,
        }
    }

    fn row_error(row: u64, field: &str, message: &str) -> Row {
        Err(RowError {
            row,
            field: field.to_owned(),
            message: message.to_owned(),
        })
    }

    fn mapping(sku: &str, title: &str) -> FieldMapping {
        FieldMapping {
            sku: sku.to_owned(),
            title: title.to_owned(),
            description: None,
            price: None,
            image_url: None,
            category: None,
            in_stock: None,
        }
    }

    /// The one error of a single-row CSV with columns `sku,title,<column>`.
    fn csv_field_error(column: &str, value: &str) -> Option<RowError> {
        let text = format!("sku,title,{column}\nA,Mug,\"{value}\"\n");
        csv(&text).into_iter().next().and_then(Result::err)
    }

    #[test]
    fn mapped_csv_reads_renamed_columns() {
        let m = FieldMapping {
            price: Some("cost".to_owned()),
            ..mapping("sku", "name")
        };
        let rows = read(
            Format::Csv,
            b"sku,name,cost,title\nA1,Blue mug,4.5,ignored\n",
            Some(&m),
        );
        assert_eq!(
            rows,
            [Ok(ProductRecord {
                price: Some(4.5),
                ..product("A1", "Blue mug")
            })]
        );
    }

    #[test]
    fn csv_without_mapping_uses_target_names_and_all_fields() {
        let rows = csv(
            " sku , title ,description,price,imageUrl,category,inStock,other\n\
             A, Mug ,Big,19.99,https://shop.example/a.jpg,Kitchen,yes,x\n",
        );
        assert_eq!(
            rows,
            [Ok(ProductRecord {
                sku: "A".to_owned(),
                title: "Mug".to_owned(),
                description: Some("Big".to_owned()),
                price: Some(19.99),
                image_url: Some("https://shop.example/a.jpg".to_owned()),
                category: Some("Kitchen".to_owned()),
                in_stock: Some(true),
            })]
        );
    }

    #[test]
    fn csv_with_bom_crlf_and_quoted_fields() {
        let text = "\u{FEFF}sku,title,description\r\n\
                    \"A,1\",\"Mug \"\"XL\"\"\",\"line one\r\nline two, more\"\r\n\
                    B,Plate,\r\n";
        // Without the BOM stripped the first header would be "\u{FEFF}sku" and the file refused.
        let rows = read(Format::Csv, text.as_bytes(), Some(&mapping("sku", "title")));
        assert_eq!(
            rows,
            [Ok(product("A,1", "Mug \"XL\"")), Ok(product("B", "Plate"))]
        );
        let rows = csv(text);
        assert_eq!(
            rows[0],
            Ok(ProductRecord {
                description: Some("line one\r\nline two, more".to_owned()),
                ..product("A,1", "Mug \"XL\"")
            })
        );
        assert_eq!(rows[1], Ok(product("B", "Plate")));
    }

    #[test]
    fn missing_column_refuses_the_file() {
        assert_eq!(
            refused(
                Format::Csv,
                b"sku,title\nA,Mug\n",
                Some(&mapping("sku", "name"))
            ),
            FileError::Malformed("column \"name\" (mapped to title) is not in the header".into())
        );
        let m = FieldMapping {
            category: Some("dept".to_owned()),
            ..mapping("sku", "title")
        };
        assert_eq!(
            refused(Format::Csv, b"sku,title\nA,Mug\n", Some(&m)),
            FileError::Malformed(
                "column \"dept\" (mapped to category) is not in the header".into()
            )
        );
        assert_eq!(
            refused(Format::Csv, b"id,title\nA,Mug\n", None),
            FileError::Malformed("column \"sku\" (mapped to sku) is not in the header".into())
        );
        // Optional columns are used only when present when there is no mapping.
        assert_eq!(csv("title,sku\nMug,A\n"), [Ok(product("A", "Mug"))]);
    }

    #[test]
    fn a_used_column_twice_in_the_header_refuses_the_file() {
        assert_eq!(
            refused(Format::Csv, b"sku,title,sku\nA,Mug,B\n", None),
            FileError::Malformed("column \"sku\" appears more than once in the header".into())
        );
        // An unused duplicate is harmless.
        assert_eq!(csv("sku,title,x,x\nA,Mug,1,2\n"), [Ok(product("A", "Mug"))]);
    }

    #[test]
    fn mixed_rows_report_their_row_and_first_failing_field() {
        let text = "sku,title,price,imageUrl,inStock\n\
                    A,Mug,1,,\n\
                    B,,2,,\n\
                    \n\
                    C,Cup,abc,ftp://x,maybe\n\
                    D,Bowl\n\
                    ,,,,\n\
                    E,Plate,,ftp://x,maybe\n\
                    F,Fork,,,maybe\n\
                    ,Nameless,,,\n\
                    G,Spoon,0.5,http://img.example/g.png,N\n";
        let rows = csv(text);
        assert_eq!(
            rows,
            [
                Ok(ProductRecord {
                    price: Some(1.0),
                    ..product("A", "Mug")
                }),
                row_error(2, "title", "title is required"),
                row_error(3, "price", "price must be a number, got \"abc\""),
                row_error(4, "", "expected 5 columns, found 2"),
                row_error(
                    5,
                    "imageUrl",
                    "imageUrl must start with http:// or https://, got \"ftp://x\""
                ),
                row_error(
                    6,
                    "inStock",
                    "inStock must be true/false, yes/no, 1/0, y/n or in stock/out of stock, \
                     got \"maybe\""
                ),
                row_error(7, "sku", "sku is required"),
                Ok(ProductRecord {
                    price: Some(0.5),
                    image_url: Some("http://img.example/g.png".to_owned()),
                    in_stock: Some(false),
                    ..product("G", "Spoon")
                }),
            ]
        );
    }

    #[test]
    fn duplicate_skus_keep_the_first() {
        let rows = csv("sku,title\nA,One\nB,Two\nA,Three\n B ,Four\nb,Five\n");
        assert_eq!(
            rows,
            [
                Ok(product("A", "One")),
                Ok(product("B", "Two")),
                row_error(3, "sku", "duplicate sku \"A\" (first at row 1)"),
                row_error(4, "sku", "duplicate sku \"B\" (first at row 2)"),
                Ok(product("b", "Five")),
            ]
        );
        // A row that fails on a later field still claims its sku.
        let rows = json(r#"[{"sku": "A", "title": ""}, {"sku": "A", "title": "Mug"}]"#);
        assert_eq!(
            rows,
            [
                row_error(1, "title", "title is required"),
                row_error(2, "sku", "duplicate sku \"A\" (first at row 1)"),
            ]
        );
    }

    #[test]
    fn many_skus_are_told_apart() {
        let mut text = String::from("sku,title\n");
        for i in 0..5000 {
            text.push_str(&format!("S{i},T\n"));
        }
        text.push_str("S4321,T\n");
        let rows = csv(&text);
        assert_eq!(rows.len(), 5001);
        assert!(rows[..5000].iter().all(Result::is_ok));
        assert_eq!(
            rows[5000],
            row_error(5001, "sku", "duplicate sku \"S4321\" (first at row 4322)")
        );
    }

    #[test]
    fn json_array_and_products_object() {
        let product_json = r#"{"sku": "A", "title": "Mug", "price": 19.99, "inStock": true,
            "imageUrl": null, "category": "Kitchen", "extra": [1]}"#;
        let expected = ProductRecord {
            price: Some(19.99),
            in_stock: Some(true),
            category: Some("Kitchen".to_owned()),
            ..product("A", "Mug")
        };
        assert_eq!(json(&format!("[{product_json}]")), [Ok(expected.clone())]);
        assert_eq!(
            json(&format!("\u{FEFF} {{\"products\": [{product_json}]}}\n")),
            [Ok(expected)]
        );
        let m = mapping("id", "name");
        assert_eq!(
            read(
                Format::Json,
                br#"[{"id": "A", "name": "Mug"}, {"id": "B"}]"#,
                Some(&m)
            ),
            [
                Ok(product("A", "Mug")),
                row_error(2, "title", "title is required")
            ]
        );
    }

    #[test]
    fn json_rows_that_are_not_objects() {
        assert_eq!(
            json(r#"[{"sku": "A", "title": "Mug"}, "B", null, {"sku": "C", "title": "Cup"}]"#),
            [
                Ok(product("A", "Mug")),
                row_error(2, "", "expected an object"),
                row_error(3, "", "expected an object"),
                Ok(product("C", "Cup")),
            ]
        );
    }

    #[test]
    fn invalid_json_names_the_position() {
        let FileError::Malformed(message) =
            refused(Format::Json, b"[\n  {\"sku\": \"A\",}\n]", None)
        else {
            panic!("not malformed");
        };
        assert_eq!(message, "invalid JSON at line 2 column 15: trailing comma");
        let FileError::Malformed(message) = refused(Format::Json, b"[{\"sku\": ", None) else {
            panic!("not malformed");
        };
        assert_eq!(
            message,
            "invalid JSON at line 1 column 9: EOF while parsing a value"
        );
    }

    #[test]
    fn wrong_json_shape_refuses_the_file() {
        let shape = FileError::Malformed(
            "expected a JSON array of products or {\"products\": [...]}".into(),
        );
        for text in [r#"{"items": []}"#, r#""products""#, "42", "null", "true"] {
            assert_eq!(
                refused(Format::Json, text.as_bytes(), None),
                shape,
                "{text}"
            );
        }
        assert_eq!(
            refused(Format::Json, br#"{"products": {"sku": "A"}}"#, None),
            FileError::Malformed("\"products\" must be an array of product objects".into())
        );
    }

    #[test]
    fn nested_json_values_are_row_errors() {
        assert_eq!(
            json(
                r#"[{"sku": "A", "title": ["Mug"]},
                    {"sku": "B", "title": "Cup", "price": {"amount": 1}},
                    {"sku": "C", "title": "Bowl", "inStock": []},
                    {"sku": "D", "title": "Plate", "category": true}]"#
            ),
            [
                row_error(1, "title", "title must be text, got an array"),
                row_error(2, "price", "price must be a number, got an object"),
                row_error(
                    3,
                    "inStock",
                    "inStock must be true/false, yes/no, 1/0, y/n or in stock/out of stock, \
                     got an array"
                ),
                row_error(4, "category", "category must be text, got true"),
            ]
        );
    }

    #[test]
    fn json_numbers_as_text_fields() {
        assert_eq!(
            json(r#"[{"sku": 1001, "title": 2.5, "category": 7}]"#),
            [Ok(ProductRecord {
                category: Some("7".to_owned()),
                ..product("1001", "2.5")
            })]
        );
        assert_eq!(
            json(r#"[{"sku": "1001", "title": "a"}, {"sku": 1001, "title": "b"}]"#)[1],
            row_error(2, "sku", "duplicate sku \"1001\" (first at row 1)")
        );
    }

    #[test]
    fn in_stock_variants() {
        let cases = [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("Yes", Some(true)),
            ("1", Some(true)),
            ("y", Some(true)),
            ("In Stock", Some(true)),
            ("false", Some(false)),
            ("no", Some(false)),
            ("0", Some(false)),
            ("N", Some(false)),
            ("out of stock", Some(false)),
            (" yes ", Some(true)),
            ("", None),
        ];
        for (value, expected) in cases {
            let rows = csv(&format!("sku,title,inStock\nA,Mug,{value}\n"));
            assert_eq!(rows.len(), 1);
            assert_eq!(
                rows[0].as_ref().map(|p| p.in_stock),
                Ok(expected),
                "{value:?}"
            );
        }
        for value in ["maybe", "2", "yess", "instock"] {
            let error = csv_field_error("inStock", value).expect(value);
            assert_eq!(error.field, "inStock", "{value:?}");
        }
        let rows = json(
            r#"[{"sku": "A", "title": "t", "inStock": false},
                {"sku": "B", "title": "t", "inStock": 1},
                {"sku": "C", "title": "t", "inStock": 0},
                {"sku": "D", "title": "t", "inStock": "out of stock"},
                {"sku": "E", "title": "t", "inStock": 2}]"#,
        );
        let in_stock: Vec<_> = rows
            .iter()
            .map(|r| r.as_ref().map(|p| p.in_stock))
            .collect();
        assert_eq!(
            in_stock[..4],
            [
                Ok(Some(false)),
                Ok(Some(true)),
                Ok(Some(false)),
                Ok(Some(false))
            ]
        );
        assert_eq!(
            rows[4],
            row_error(
                5,
                "inStock",
                "inStock must be true/false, yes/no, 1/0, y/n or in stock/out of stock, got 2"
            )
        );
    }

    #[test]
    fn price_variants() {
        let good = [
            ("19.99", Some(19.99)),
            ("20", Some(20.0)),
            ("0.5", Some(0.5)),
            (" 3 ", Some(3.0)),
            ("0", Some(0.0)),
            ("-0", Some(0.0)),
            ("", None),
        ];
        for (value, expected) in good {
            let rows = csv(&format!("sku,title,price\nA,Mug,{value}\n"));
            assert_eq!(rows[0].as_ref().map(|p| p.price), Ok(expected), "{value:?}");
        }
        let bad = [
            ("-1", "price must not be negative"),
            ("abc", "price must be a number, got \"abc\""),
            ("$5", "price must be a number, got \"$5\""),
            ("19,99", "price must be a number, got \"19,99\""),
            ("NaN", "price must be a number, got \"NaN\""),
            ("inf", "price must be a number, got \"inf\""),
            ("1e999", "price must be a finite number, got \"1e999\""),
            (
                "123456789012345678901234567890123456789012345 USD",
                "price must be a number, got \"1234567890123456789012345678901234567890…\"",
            ),
        ];
        for (value, message) in bad {
            let expected = RowError {
                row: 1,
                field: "price".to_owned(),
                message: message.to_owned(),
            };
            assert_eq!(csv_field_error("price", value), Some(expected), "{value:?}");
        }
        let rows = json(
            r#"[{"sku": "A", "title": "t", "price": 12},
                {"sku": "B", "title": "t", "price": 0.25},
                {"sku": "C", "title": "t", "price": "7.5"},
                {"sku": "D", "title": "t", "price": -3},
                {"sku": "E", "title": "t", "price": true}]"#,
        );
        let prices: Vec<_> = rows.iter().map(|r| r.as_ref().map(|p| p.price)).collect();
        assert_eq!(prices[..3], [Ok(Some(12.0)), Ok(Some(0.25)), Ok(Some(7.5))]);
        assert_eq!(rows[3], row_error(4, "price", "price must not be negative"));
        assert_eq!(
            rows[4],
            row_error(5, "price", "price must be a number, got true")
        );
    }

    #[test]
    fn empty_input_refuses_the_file() {
        for bytes in [&b""[..], b"  \r\n\t", b"\xEF\xBB\xBF", b"\xEF\xBB\xBF \n"] {
            for format in [Format::Csv, Format::Json] {
                assert_eq!(refused(format, bytes, None), FileError::Empty, "{bytes:?}");
            }
        }
    }

    #[test]
    fn a_file_without_products_has_zero_records() {
        assert_eq!(csv("sku,title\n"), []);
        assert_eq!(csv("sku,title"), []);
        assert_eq!(csv("sku,title\r\n\r\n,\r\n"), []);
        assert_eq!(json("[]"), []);
        assert_eq!(json(r#"{"products": []}"#), []);
    }

    #[test]
    fn non_utf8_bytes_fail_only_the_field_that_uses_them() {
        let bytes = b"sku,title,notes\nA,Caf\xE9,x\nB,Plate,caf\xE9\n";
        assert_eq!(
            read(Format::Csv, bytes, None),
            [
                row_error(
                    1,
                    "title",
                    "title is not valid UTF-8 text; save the file as UTF-8"
                ),
                Ok(product("B", "Plate")),
            ]
        );
    }

    #[test]
    fn utf16_files_are_refused_with_a_hint() {
        assert_eq!(
            refused(Format::Csv, b"\xFF\xFEs\0k\0u\0", None),
            FileError::Malformed("the file is UTF-16 encoded; save it as UTF-8".into())
        );
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let ok_sku = "é".repeat(128);
        let long_sku = "é".repeat(129);
        let long_title = "t".repeat(501);
        let long_category = "c".repeat(201);
        let text = format!(
            "sku,title,category\n{ok_sku},Mug,\n{long_sku},Mug,\nB,{long_title},\nC,Cup,{long_category}\n"
        );
        assert_eq!(
            csv(&text),
            [
                Ok(product(&ok_sku, "Mug")),
                row_error(2, "sku", "sku must be at most 128 characters, got 129"),
                row_error(3, "title", "title must be at most 500 characters, got 501"),
                row_error(
                    4,
                    "category",
                    "category must be at most 200 characters, got 201"
                ),
            ]
        );
        let description = format!("sku,description,title\nA,\"{}\",t\n", "d".repeat(20_001));
        assert_eq!(
            csv(&description)[0]
                .as_ref()
                .map_err(|e| e.message.as_str()),
            Err("description must be at most 20000 characters, got 20001")
        );
        let url = format!("https://x.example/{}", "a".repeat(2048));
        let error = csv_field_error("imageUrl", &url).expect("too long");
        assert_eq!(
            error.message,
            "imageUrl must be at most 2048 characters, got 2066"
        );
    }

    #[test]
    fn quoted_values_are_cut_between_characters() {
        let value = "€".repeat(60);
        let error = csv_field_error("price", &value).expect("not a price");
        assert_eq!(
            error.message,
            format!("price must be a number, got \"{}…\"", "€".repeat(40))
        );
    }

    #[test]
    fn nul_in_a_field_fails_only_its_row() {
        let nul = |field: &str| format!("{field} must not contain the NUL character (U+0000)");
        let rows =
            csv("sku,title,description,price\nA,Mug,,1\nB,Pl\0ate,,2\nC,Cup,x\0,3\nD,Bowl,,4\0\n");
        assert_eq!(
            rows[0],
            Ok(ProductRecord {
                price: Some(1.0),
                ..product("A", "Mug")
            })
        );
        assert_eq!(rows[1], row_error(2, "title", &nul("title")));
        assert_eq!(rows[2], row_error(3, "description", &nul("description")));
        assert_eq!(rows[3], row_error(4, "price", &nul("price")));
        assert_eq!(rows.len(), 4);

        let rows = json(
            r#"[{"sku": "A\u0000", "title": "Mug"}, {"sku": "B", "title": "Plate", "category": "\u0000"}, {"sku": "C", "title": "Cup"}]"#,
        );
        assert_eq!(
            rows,
            [
                row_error(1, "sku", &nul("sku")),
                row_error(2, "category", &nul("category")),
                Ok(product("C", "Cup")),
            ]
        );
        // An unused column may hold anything.
        assert_eq!(
            csv("sku,title,other\nA,Mug,\0\n"),
            [Ok(product("A", "Mug"))]
        );
    }

    #[test]
    fn sku_rejects_control_characters() {
        assert_eq!(
            json(r#"[{"sku": "A\u0007", "title": "Mug"}]"#),
            [row_error(
                1,
                "sku",
                "sku must not contain control characters"
            )]
        );
    }

    #[test]
    fn blank_optional_fields_are_absent() {
        assert_eq!(
            csv("sku,title,description,category,imageUrl\nA,Mug,  ,\t, \n"),
            [Ok(product("A", "Mug"))]
        );
        assert_eq!(
            json(r#"[{"sku": "A", "title": "Mug", "description": " ", "price": ""}]"#),
            [Ok(product("A", "Mug"))]
        );
    }

    #[test]
    fn image_url_scheme() {
        for url in ["HTTPS://x.example/a.png", "http://x"] {
            assert_eq!(csv_field_error("imageUrl", url), None, "{url}");
        }
        for url in [
            "https://",
            "//x.example/a.png",
            "x.example/a.png",
            "javascript:alert(1)",
        ] {
            let error = csv_field_error("imageUrl", url).expect(url);
            assert_eq!(error.field, "imageUrl");
        }
    }

    #[test]
    fn a_large_catalog_streams_through() {
        let mut text = String::from("sku,title,price,inStock\n");
        for i in 0..100_000 {
            text.push_str(&format!("SKU-{i},Product {i},{i}.99,yes\n"));
        }
        let mut rows = records(Format::Csv, text.as_bytes(), None).expect("accepted");
        assert_eq!(
            rows.next(),
            Some(Ok(ProductRecord {
                price: Some(0.99),
                in_stock: Some(true),
                ..product("SKU-0", "Product 0")
            }))
        );
        assert_eq!(rows.filter(Result::is_ok).count(), 99_999);
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::test_runner::TestCaseError;

    use super::*;

    /// The seven targets' columns, then one no mapping uses.
    const COLUMNS: usize = 8;
    const DEFAULT_NAMES: [&str; COLUMNS] = [
        "sku",
        "title",
        "description",
        "price",
        "imageUrl",
        "category",
        "inStock",
        "notes",
    ];
    const MAPPED_NAMES: [&str; COLUMNS] = [
        "Item Code",
        "Name",
        "Long text",
        "Cost (USD)",
        "Picture",
        "Department",
        "Available?",
        "notes",
    ];

    fn names(mapped: bool) -> &'static [&'static str; COLUMNS] {
        if mapped {
            &MAPPED_NAMES
        } else {
            &DEFAULT_NAMES
        }
    }

    fn mapping(mapped: bool) -> Option<FieldMapping> {
        let name = |i: usize| MAPPED_NAMES[i].to_owned();
        mapped.then(|| FieldMapping {
            sku: name(0),
            title: name(1),
            description: Some(name(2)),
            price: Some(name(3)),
            image_url: Some(name(4)),
            category: Some(name(5)),
            in_stock: Some(name(6)),
        })
    }

    /// Text as a merchant's file holds it after trimming: never blank, never NUL; quotes,
    /// commas and line breaks included.
    fn text(max: usize) -> BoxedStrategy<String> {
        let pattern = |class: &str| {
            prop::string::string_regex(&format!("[{class}]{{1,{max}}}")).expect("a regex")
        };
        prop_oneof![
            3 => pattern("a-zA-Z0-9 ,\"';é€\\r\\n\\t-"),
            1 => pattern("^\\x00"),
        ]
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("blank", |s| !s.is_empty())
        .boxed()
    }

    fn sku() -> BoxedStrategy<String> {
        prop_oneof![
            "[A-Z]{2,4}-[0-9]{1,5}",
            "[a-zA-Z0-9 ,\"';é€-]{1,20}",
            "[^\\p{Cc}]{1,20}"
        ]
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("blank", |s| !s.is_empty())
        .boxed()
    }

    fn price() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (0u64..10_000_000).prop_map(|cents| cents as f64 / 100.0),
            0.0f64..1e9,
        ]
    }

    /// Any case of one of the words `inStock` takes, and what it means.
    fn in_stock() -> impl Strategy<Value = (bool, String)> {
        let word = prop_oneof![
            select(IN_STOCK_WORDS.to_vec()).prop_map(|w| (true, w)),
            select(OUT_OF_STOCK_WORDS.to_vec()).prop_map(|w| (false, w)),
        ];
        (word, any::<u64>()).prop_map(|((value, word), cases)| {
            let word = word
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if (cases >> (i % 64)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            (value, word)
        })
    }

    /// A valid product and the ways a file may spell it.
    #[derive(Debug, Clone)]
    struct Row {
        record: ProductRecord,
        in_stock_word: String,
        /// The unmapped column: any bytes (NUL, other encodings) that must do no harm.
        notes: Vec<u8>,
        /// CSV: a blank optional field is written as spaces; JSON: as `null` (else omitted).
        blank_as_filler: bool,
        /// JSON: the price as text and `inStock` as its word rather than a number and a bool.
        json_as_text: bool,
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            (
                sku(),
                text(40),
                prop::option::of(text(80)),
                prop::option::of(price()),
                prop::option::of("(http|https|HTTP|Https)://[a-z0-9./_-]{1,40}"),
                prop::option::of(text(30)),
            ),
            prop::option::of(in_stock()),
            prop::collection::vec(any::<u8>(), 0..12),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    (sku, title, description, price, image_url, category),
                    stock,
                    notes,
                    blank_as_filler,
                    json_as_text,
                )| Row {
                    record: ProductRecord {
                        sku,
                        title,
                        description,
                        price,
                        image_url,
                        category,
                        in_stock: stock.as_ref().map(|(value, _)| *value),
                    },
                    in_stock_word: stock.map(|(_, word)| word).unwrap_or_default(),
                    notes,
                    blank_as_filler,
                    json_as_text,
                },
            )
    }

    /// Up to eight products with distinct skus.
    fn rows() -> impl Strategy<Value = Vec<Row>> {
        prop::collection::vec(row(), 0..8).prop_map(|mut rows| {
            let mut seen = HashSet::new();
            rows.retain(|row| seen.insert(row.record.sku.clone()));
            rows
        })
    }

    /// How a spreadsheet might write the file.
    #[derive(Debug, Clone)]
    struct CsvStyle {
        order: Vec<usize>,
        quote_all: bool,
        crlf: bool,
        bom: bool,
        final_line_break: bool,
    }

    fn csv_style() -> impl Strategy<Value = CsvStyle> {
        (
            Just((0..COLUMNS).collect::<Vec<_>>()).prop_shuffle(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(order, quote_all, crlf, bom, final_line_break)| CsvStyle {
                order,
                quote_all,
                crlf,
                bom,
                final_line_break,
            })
    }

    fn csv_cells(row: &Row) -> Vec<Vec<u8>> {
        let r = &row.record;
        let blank = if row.blank_as_filler { "  " } else { "" };
        let optional =
            |value: &Option<String>| value.as_deref().unwrap_or(blank).as_bytes().to_vec();
        let stock = if row.in_stock_word.is_empty() {
            blank
        } else {
            &row.in_stock_word
        };
        vec![
            r.sku.as_bytes().to_vec(),
            r.title.as_bytes().to_vec(),
            optional(&r.description),
            optional(&r.price.map(|p| p.to_string())),
            optional(&r.image_url),
            optional(&r.category),
            stock.as_bytes().to_vec(),
            row.notes.clone(),
        ]
    }

    fn write_csv(names: &[&str], cells: &[Vec<Vec<u8>>], style: &CsvStyle) -> Vec<u8> {
        let mut out = Vec::new();
        if style.bom {
            out.extend_from_slice(UTF8_BOM);
        }
        let eol: &[u8] = if style.crlf { b"\r\n" } else { b"\n" };
        let header: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
        for line in std::iter::once(&header).chain(cells) {
            for (i, column) in style.order.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let cell = &line[*column];
                let quote = style.quote_all
                    || cell
                        .iter()
                        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
                if quote {
                    out.push(b'"');
                    for byte in cell {
                        if *byte == b'"' {
                            out.push(b'"');
                        }
                        out.push(*byte);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(cell);
                }
            }
            out.extend_from_slice(eol);
        }
        if !style.final_line_break {
            out.truncate(out.len() - eol.len());
        }
        out
    }

    fn json_fields(row: &Row) -> Vec<Option<Value>> {
        let r = &row.record;
        let text = |value: &Option<String>| value.clone().map(Value::String);
        // Prices go as JSON numbers of any precision: the workspace turns on serde_json's
        // `float_roundtrip`, so the number read back is the exact double written.
        let price = r.price.map(|p| {
            if row.json_as_text {
                Value::String(p.to_string())
            } else {
                Value::Number(Number::from_f64(p).expect("finite"))
            }
        });
        let stock = r.in_stock.map(|value| {
            if row.json_as_text {
                Value::String(row.in_stock_word.clone())
            } else {
                Value::Bool(value)
            }
        });
        vec![
            Some(Value::String(r.sku.clone())),
            Some(Value::String(r.title.clone())),
            text(&r.description),
            price,
            text(&r.image_url),
            text(&r.category),
            stock,
            Some(Value::String(
                String::from_utf8_lossy(&row.notes).into_owned(),
            )),
        ]
    }

    fn write_json(
        names: &[&str],
        rows: &[Row],
        fields: &[Vec<Option<Value>>],
        wrapped: bool,
        pretty: bool,
        bom: bool,
    ) -> Vec<u8> {
        let products: Vec<Value> = rows
            .iter()
            .zip(fields)
            .map(|(row, fields)| {
                let mut object = Map::new();
                for (name, field) in names.iter().zip(fields) {
                    match field {
                        Some(value) => {
                            object.insert((*name).to_owned(), value.clone());
                        }
                        None if row.blank_as_filler => {
                            object.insert((*name).to_owned(), Value::Null);
                        }
                        None => {}
                    }
                }
                Value::Object(object)
            })
            .collect();
        let document = if wrapped {
            serde_json::json!({ "products": products })
        } else {
            Value::Array(products)
        };
        let mut out = if bom { UTF8_BOM.to_vec() } else { Vec::new() };
        let text = if pretty {
            serde_json::to_vec_pretty(&document)
        } else {
            serde_json::to_vec(&document)
        };
        out.extend(text.expect("JSON of JSON values"));
        out
    }

    fn read(
        format: Format,
        bytes: &[u8],
        mapping: Option<&FieldMapping>,
    ) -> Result<Vec<Result<ProductRecord, RowError>>, FileError> {
        records(format, bytes, mapping).map(Iterator::collect)
    }

    /// `text` with NUL inserted before its `at`-th character (counting round).
    fn with_nul(text: &str, at: usize) -> String {
        let count = text.chars().count();
        let index = text
            .char_indices()
            .nth(at % (count + 1))
            .map_or(text.len(), |(i, _)| i);
        let mut text = text.to_owned();
        text.insert(index, '\0');
        text
    }

    fn nul_error(row: usize, column: usize) -> Result<ProductRecord, RowError> {
        let name = Target::ALL[column].name();
        Err(RowError {
            row: row as u64 + 1,
            field: name.to_owned(),
            message: format!("{name} {}", crate::text::NUL_REFUSED),
        })
    }

    /// What every row a file yields promises, whatever the file: rows numbered in order,
    /// errors naming a target, and records that keep the field rules.
    fn check_rows(rows: Records<'_>) -> Result<(), TestCaseError> {
        let mut skus = HashSet::new();
        for (index, row) in rows.enumerate() {
            match row {
                Ok(record) => {
                    let sku = &record.sku;
                    prop_assert!(
                        !sku.is_empty()
                            && sku.trim() == sku
                            && sku.chars().count() <= MAX_SKU_CHARS
                    );
                    prop_assert!(!sku.chars().any(char::is_control), "{:?}", sku);
                    prop_assert!(skus.insert(sku.clone()), "duplicate sku {:?} imported", sku);
                    prop_assert!(
                        !record.title.is_empty() && record.title.chars().count() <= MAX_TITLE_CHARS
                    );
                    let texts = [
                        Some(&record.title),
                        record.description.as_ref(),
                        record.image_url.as_ref(),
                        record.category.as_ref(),
                    ];
                    for text in texts.into_iter().flatten() {
                        prop_assert!(
                            !text.contains('\0') && !text.is_empty() && text.trim() == text,
                            "{:?}",
                            text
                        );
                    }
                    if let Some(price) = record.price {
                        prop_assert!(
                            price.is_finite() && price >= 0.0 && price.is_sign_positive(),
                            "{}",
                            price
                        );
                    }
                    if let Some(url) = &record.image_url {
                        let lower = url.to_ascii_lowercase();
                        prop_assert!(
                            lower.starts_with("http://") || lower.starts_with("https://"),
                            "{}",
                            url
                        );
                    }
                }
                Err(error) => {
                    prop_assert_eq!(error.row, index as u64 + 1);
                    prop_assert!(
                        error.field.is_empty()
                            || Target::ALL.iter().any(|t| t.name() == error.field),
                        "{:?}",
                        error
                    );
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
        Ok(())
    }

    /// Bytes that look like a CSV catalog often enough to reach the row rules.
    fn csv_like() -> impl Strategy<Value = Vec<u8>> {
        let header = select(vec![
            "sku,title",
            "sku,title,price,inStock",
            "title,sku,imageUrl,description,category",
            "sku",
        ]);
        let alphabet: &[u8] = b"ab1.-e ,\"\r\n\t\0\xff\xe9";
        let body = prop::collection::vec(select(alphabet.to_vec()), 0..160);
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            (header, body).prop_map(|(header, body)| [header.as_bytes(), b"\n", &body].concat()),
        ]
    }

    /// Bytes that look like a JSON catalog often enough to reach the row rules.
    fn json_like() -> impl Strategy<Value = Vec<u8>> {
        let token = select(vec![
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            " ",
            "\"sku\"",
            "\"title\"",
            "\"price\"",
            "\"inStock\"",
            "\"products\"",
            "\"A\"",
            "\" \"",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "1",
            "-0",
            "-1",
            "2.5",
            "1e400",
            "null",
            "true",
            "\"yes\"",
            "\"http://x\"",
            "\"\u{7}\"",
        ]);
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat().into_bytes()),
            prop::collection::vec(row(), 0..4).prop_map(|rows| {
                let fields: Vec<_> = rows.iter().map(json_fields).collect();
                write_json(&DEFAULT_NAMES, &rows, &fields, false, false, false)
            }),
        ]
    }

    proptest! {
        /// Any bytes uploaded as CSV are a file error or rows that keep the rules; reading
        /// them all never panics.
        #[test]
        fn any_csv_bytes_are_refused_or_read_row_by_row(
            bytes in csv_like(),
            mapped in any::<bool>(),
        ) {
            let mapping = mapping(mapped);
            if let Ok(rows) = records(Format::Csv, &bytes, mapping.as_ref()) {
                check_rows(rows)?;
            }
        }

        /// The same for JSON.
        #[test]
        fn any_json_bytes_are_refused_or_read_row_by_row(
            bytes in json_like(),
            mapped in any::<bool>(),
        ) {
            let mapping = mapping(mapped);
            if let Ok(rows) = records(Format::Json, &bytes, mapping.as_ref()) {
                check_rows(rows)?;
            }
        }

        /// Products written as a spreadsheet writes CSV (any column order, quoting, CRLF, a
        /// BOM, an unmapped column holding anything) are read back as the same products.
        #[test]
        fn csv_files_of_valid_products_read_back_the_same(
            rows in rows(),
            style in csv_style(),
            mapped in any::<bool>(),
        ) {
            let cells: Vec<_> = rows.iter().map(csv_cells).collect();
            let bytes = write_csv(names(mapped), &cells, &style);
            let expected: Vec<_> = rows.iter().map(|row| Ok(row.record.clone())).collect();
            prop_assert_eq!(read(Format::Csv, &bytes, mapping(mapped).as_ref()), Ok(expected));
        }

        /// Products written as JSON (an array or `{"products": …}`, prices as numbers or
        /// text, blanks omitted or `null`) are read back as the same products.
        #[test]
        fn json_files_of_valid_products_read_back_the_same(
            rows in rows(),
            mapped in any::<bool>(),
            wrapped in any::<bool>(),
            pretty in any::<bool>(),
            bom in any::<bool>(),
        ) {
            let fields: Vec<_> = rows.iter().map(json_fields).collect();
            let bytes = write_json(names(mapped), &rows, &fields, wrapped, pretty, bom);
            let expected: Vec<_> = rows.iter().map(|row| Ok(row.record.clone())).collect();
            prop_assert_eq!(read(Format::Json, &bytes, mapping(mapped).as_ref()), Ok(expected));
        }

        /// A sku seen before fails the later row, naming where it first was; the first one
        /// and every other row import as before.
        #[test]
        fn a_repeated_sku_fails_only_the_later_row(
            rows in rows().prop_filter("no rows", |rows| !rows.is_empty()),
            (first, title) in (any::<usize>(), text(20)),
            style in csv_style(),
            json in any::<bool>(),
        ) {
            let first = first % rows.len();
            let mut again = rows[first].clone();
            again.record.title = title;
            let all: Vec<Row> = rows.iter().cloned().chain([again]).collect();
            let bytes = if json {
                let fields: Vec<_> = all.iter().map(json_fields).collect();
                write_json(&DEFAULT_NAMES, &all, &fields, false, false, false)
            } else {
                let cells: Vec<_> = all.iter().map(csv_cells).collect();
                write_csv(&DEFAULT_NAMES, &cells, &style)
            };
            let format = if json { Format::Json } else { Format::Csv };
            let mut read = read(format, &bytes, None).expect("a readable file");
            let last = read.pop();
            let expected: Vec<_> = rows.iter().map(|row| Ok(row.record.clone())).collect();
            prop_assert_eq!(read, expected);
            let error = last.and_then(Result::err);
            prop_assert!(error.is_some(), "the repeated sku was imported");
            let error = error.unwrap();
            prop_assert_eq!((error.row, error.field.as_str()), (all.len() as u64, "sku"));
            prop_assert!(error.message.starts_with("duplicate sku "), "{}", error.message);
            let first_at = format!("(first at row {})", first + 1);
            prop_assert!(error.message.ends_with(&first_at), "{}", error.message);
        }

        /// Every way of writing zero is a price of 0, never -0 (which would show as "-0").
        #[test]
        fn any_zero_price_is_zero(
            zero in "[+-]?0(\\.0{1,3})?(e[+-]?[0-9])?",
            json in any::<bool>(),
        ) {
            let bytes = if json {
                format!(r#"[{{"sku": "A", "title": "t", "price": {zero}}}]"#)
            } else {
                format!("sku,title,price\nA,t,{zero}\n")
            };
            let format = if json { Format::Json } else { Format::Csv };
            // JSON has no leading `+`; such a file is refused whole.
            let Ok(rows) = read(format, bytes.as_bytes(), None) else {
                prop_assert!(json && zero.starts_with('+'), "{} refused", bytes);
                return Ok(());
            };
            let price = rows[0].as_ref().ok().and_then(|record| record.price);
            let zero_price = price.is_some_and(|p| p == 0.0 && p.is_sign_positive());
            prop_assert!(zero_price, "{}: {:?}", zero, rows);
        }

        /// A NUL anywhere in one mapped CSV cell fails that row, naming the field; the file
        /// and every other row import as before.
        #[test]
        fn a_nul_in_a_csv_cell_fails_only_its_row(
            rows in rows().prop_filter("no rows", |rows| !rows.is_empty()),
            style in csv_style(),
            (row, column, at) in (any::<usize>(), 0..Target::ALL.len(), any::<usize>()),
        ) {
            let row = row % rows.len();
            let mut cells: Vec<_> = rows.iter().map(csv_cells).collect();
            let cell = String::from_utf8(cells[row][column].clone()).expect("mapped cells: text");
            cells[row][column] = with_nul(&cell, at).into_bytes();
            let bytes = write_csv(&DEFAULT_NAMES, &cells, &style);
            let mut expected: Vec<_> = rows.iter().map(|row| Ok(row.record.clone())).collect();
            expected[row] = nul_error(row, column);
            prop_assert_eq!(read(Format::Csv, &bytes, None), Ok(expected));
        }

        /// The same for a NUL in a JSON string (`\u0000`), whichever field it is in.
        #[test]
        fn a_nul_in_a_json_string_fails_only_its_row(
            rows in rows().prop_filter("no rows", |rows| !rows.is_empty()),
            (row, column, at) in (any::<usize>(), 0..Target::ALL.len(), any::<usize>()),
        ) {
            let row = row % rows.len();
            let mut fields: Vec<_> = rows.iter().map(json_fields).collect();
            let text = match &fields[row][column] {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            fields[row][column] = Some(Value::String(with_nul(&text, at)));
            let bytes = write_json(&DEFAULT_NAMES, &rows, &fields, false, false, false);
            let mut expected: Vec<_> = rows.iter().map(|row| Ok(row.record.clone())).collect();
            expected[row] = nul_error(row, column);
            prop_assert_eq!(read(Format::Json, &bytes, None), Ok(expected));
        }
    }
}
