//! vicuna: the Vicuna recipe (ShareGPT cleaning, LLaMA fine-tuning, LLM-judge evaluation) as a
//! library; `src/main.rs` is a thin command-line layer over it. See DESIGN.md for the data flow:
//! raw dump -> clean conversations -> token ids and labels -> batches -> training steps.
pub mod data;
pub mod eval;
pub mod model;
pub mod train;
pub mod util;
