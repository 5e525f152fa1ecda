//! Chat: answers to shoppers' questions from the merchant's own catalog and documents.

pub(crate) mod answer;
pub(crate) mod understand;
