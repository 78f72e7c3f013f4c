//! vicuna: the Vicuna recipe (ShareGPT cleaning, LLaMA fine-tuning, serving, LLM-judge evaluation)
//! as a library; `src/main.rs` is a thin command-line layer over it. Stages depend one way, each on
//! those listed before it only (DESIGN.md): raw dump -> clean conversations -> token ids and labels
//! (`data`) -> the model (`model`) -> training steps and checkpoints (`train`) -> answers, chat and
//! HTTP (`infer`) -> judgments and reports (`eval`); `util` serves them all.
pub mod data;
pub mod eval;
pub mod infer;
pub mod model;
pub mod train;
pub mod util;
