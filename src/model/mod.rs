//! The LLaMA model family on libtorch (tch): device selection now; config, layers, weights and
//! generation as they land.
pub mod config;
pub mod device;
pub mod generate;
pub mod inference;
pub mod llama;
pub mod weights;
