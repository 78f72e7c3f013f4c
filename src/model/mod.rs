//! The LLaMA model family on libtorch (tch): device selection now; config, layers, weights and
//! generation as they land.
pub mod bpe_train;
pub mod device;
pub mod tokenizer;
