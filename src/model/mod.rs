//! The LLaMA model family on libtorch (tch): its config (`config`), the layers with HF tensor
//! names (`llama`), checkpoints in and out (`weights`), llama.cpp's GGUF files (`gguf` to read and
//! import them, `gguf_export` to write them), delta weights as Vicuna was released (`delta`) and
//! device and dtype choices (`device`).
//! Depends on nothing but `util`, like candle's `llama.rs`.
pub mod config;
pub mod delta;
pub mod device;
pub mod gguf;
pub mod gguf_export;
pub mod llama;
pub mod weights;
