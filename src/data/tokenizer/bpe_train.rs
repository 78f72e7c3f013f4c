//! `vicuna tokenizer train`: a small byte-level BPE tokenizer (GPT-2 / Llama-3 style: every byte
//! is representable, no unknown token) trained with the `tokenizers` crate on conversation text,
//! with the special tokens of every built-in template. For tiny test and demo models that need no
//! download; real models bring their own tokenizer.
use crate::util::atomic;
use anyhow::{anyhow, Result};
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder,
};

/// Special tokens of the trained tokenizer: BOS, EOS, padding, and the role and end-of-turn
/// markers of the `llama-3` and `chatml` templates (so they stay single tokens).
pub const SPECIAL_TOKENS: &[&str] =
    &["<s>", "</s>", "<pad>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"];

/// A ChatML Jinja template written into the trained tokenizer's config, so `--template tokenizer`
/// works with it too.
const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Trains a tokenizer of `vocab_size` tokens on `texts` and writes `tokenizer.json` and
/// `tokenizer_config.json` into `dir`.
pub fn train(texts: &[String], vocab_size: usize, dir: &Path) -> Result<()> {
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // No prefix space: text after a special token is tokenized as written, as in Llama-3.
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(byte_level.into()))
            .with_post_processor(Some(byte_level.into()))
            .with_decoder(Some(byte_level.into()))
            .build()
            .map_err(|e| anyhow!("cannot build tokenizer: {e}"))?;
    tokenizer.train(&mut trainer, texts.iter()).map_err(|e| anyhow!("tokenizer training failed: {e}"))?;
    let json = tokenizer.to_string(true).map_err(|e| anyhow!("cannot serialise tokenizer: {e}"))?;
    atomic::write_bytes(&dir.join("tokenizer.json"), json.as_bytes())?;
    let config = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "add_bos_token": true,
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    atomic::write_bytes(&dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&config)?.as_bytes())
}
