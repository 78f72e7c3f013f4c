//! Inference: a model directory ready to answer (`engine`: weights, tokenizer and template),
//! batched generation with a KV cache (`generate`), streaming text (`stream`), the terminal chat
//! (`chat`) and the OpenAI-compatible server (`serve`, with its request parsing in `request`). Uses `data` (templates, tokenizers) and
//! `model`; `eval` builds on it.
pub mod chat;
pub mod engine;
pub mod generate;
pub mod request;
pub mod serve;
pub mod stream;
