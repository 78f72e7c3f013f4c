//! The LLaMA model family on libtorch (tch): its config (`config`), the layers with HF tensor
//! names (`llama`), checkpoints in and out (`weights`, and GGUF for llama.cpp: `gguf_export`) and device and dtype choices (`device`).
//! Depends on nothing but `util`, like candle's `llama.rs`.
pub mod config;
pub mod device;
pub mod gguf_export;
pub mod llama;
pub mod weights;
