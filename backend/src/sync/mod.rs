//! Product sync: catalog files and pulls turned into the merchant's products, with a run in
//! the history for each.

pub(crate) mod fetch;
pub(crate) mod import;
pub(crate) mod metrics;
pub(crate) mod parse;
pub mod runner;
pub mod schedule;

pub use runner::Runner;
