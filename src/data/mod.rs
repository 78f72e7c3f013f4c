//! Data: from raw dumps to clean conversations (and, as later stages land, to token ids, labels
//! and batches). Each stage owns its module; `pipeline` runs them over files in parallel.
pub mod clean;
pub mod conversation;
pub mod convert;
pub mod dedup;
pub mod encode;
pub mod filter;
pub mod html;
pub mod inspect;
pub mod loader;
pub mod ops;
pub mod pipeline;
pub mod records;
pub mod report;
pub mod select;
pub mod split;
pub mod stats;
pub mod template;
pub mod writer;
