//! Product sync: catalog files and pulls turned into the merchant's products, with a run in
//! the history for each.

pub(crate) mod import;
pub(crate) mod parse;
