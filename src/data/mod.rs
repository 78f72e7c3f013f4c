//! Data: from raw dumps to clean conversations, to token ids and labels (with the tokenizer), and
//! the order in which training sees them. Each stage owns its module; `pipeline` runs them over
//! files in parallel. Depends only on `util`.
pub mod bleu;
pub mod clean;
pub mod conversation;
pub mod convert;
pub mod decontaminate;
pub mod dedup;
pub mod encode;
pub mod filter;
pub mod html;
pub mod inspect;
pub mod loader;
pub mod mix;
pub mod neardup;
pub mod ops;
pub mod pipeline;
pub mod records;
pub mod report;
pub mod sampler;
pub mod select;
pub mod sources;
pub mod split;
pub mod stats;
pub mod template;
pub mod tokenizer;
pub mod words;
pub mod writer;
