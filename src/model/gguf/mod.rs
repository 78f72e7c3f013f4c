//! GGUF, llama.cpp's model format: a memory-mapped, bounds-checked reader (`reader`), ggml's tensor
//! types and their exact dequantization (`dequant`), and the import of a llama-architecture file
//! into a Hugging Face directory with its tokenizer (`import`, `vocab`).
//!
//! Written here rather than taken from a crate: candle's `quantized` module reads GGUF but brings
//! all of candle (its own tensor type and kernels) into a libtorch project; the small GGUF crates
//! on crates.io are young single-author projects whose exactness and handling of hostile input we
//! would have to verify anyway. The format is small (ggml's `docs/gguf.md`), and what matters
//! here, values bit-identical to the `gguf` Python package and no panic or absurd allocation on a
//! malformed file, is tested directly (`tests/gguf_import.rs`).
pub mod dequant;
pub mod import;
pub mod reader;
mod vocab;

pub use dequant::GgmlType;
pub use reader::{Gguf, TensorInfo, Value};
