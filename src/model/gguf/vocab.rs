//! A Hugging Face tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata, so that the
//! imported directory tokenizes as llama.cpp does (`llama-vocab.cpp`):
//! - `gpt2`: byte-level BPE with the file's merges, pre-tokenized by the regexes llama.cpp uses
//!   for the `tokenizer.ggml.pre` it names (each regex a `Split` that isolates its matches, then
//!   byte-level mapping without a regex of its own);
//! - `llama`: SentencePiece-style BPE with byte fallback (`<0x0A>` tokens), `▁` for spaces and a
//!   leading `▁`; merges derived from the scores as transformers' `SentencePieceExtractor` does
//!   (every split of a token into two tokens, best-scored token first).
//!
//! Tokens of type CONTROL and USER_DEFINED become added tokens (matched whole in text, as
//! llama.cpp matches them with `parse_special`), CONTROL ones marked special.
//! `tokenizer_config.json` names the bos/eos/pad/unk tokens and carries
//! `tokenizer.chat_template`.
use super::reader::{Gguf, Value};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value as Json};

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i64 = 1;
const UNKNOWN: i64 = 2;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// GPT-2's pre-tokenizer regex (also the second half of several others).
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's (`llama-bpe`).
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer regexes llama.cpp applies for `tokenizer.ggml.pre` (in order), and whether
/// a word found whole in the vocabulary skips the merges (llama.cpp's `ignore_merges`).
fn pre_regexes(pre: &str) -> Result<(Vec<&'static str>, bool)> {
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (vec![r"\p{N}", GPT2_REGEX], false)
        }
        "llama-bpe" | "llama3" | "llama-v3" => (vec![LLAMA3_REGEX], true),
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => (vec![GPT2_REGEX], false),
        "default" => (vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2_REGEX, r"\p{N}+", r"[0-9][0-9][0-9]"], false),
        other => bail!(
            "tokenizer.ggml.pre {other:?} is not supported (supported: smollm, llama-bpe, gpt-2, default and the pre-tokenizers that share their rules)"
        ),
    })
}

/// The string array under `key`.
fn strings<'a>(gguf: &'a Gguf, key: &str) -> Result<Vec<&'a str>> {
    let v = gguf.get(key).with_context(|| format!("{}: no {key} in the metadata", gguf.path.display()))?;
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .with_context(|| format!("{}: {key} must be an array of strings", gguf.path.display()))
}

/// A token id under `key`, if present and inside the vocabulary.
fn token_id(gguf: &Gguf, key: &str, n: usize) -> Option<usize> {
    gguf.get(key).and_then(Value::as_u64).map(|v| v as usize).filter(|&id| id < n)
}

/// What the importer writes for the tokenizer.
pub struct TokenizerFiles {
    /// `tokenizer.json`.
    pub tokenizer: Json,
    /// `tokenizer_config.json`.
    pub config: Json,
    /// Ids of bos, eos (and end-of-turn), pad, for config.json and generation_config.json.
    pub bos: Option<u32>,
    pub eos: Vec<u32>,
    pub pad: Option<u32>,
}

/// Builds the tokenizer files from the metadata of `gguf`.
pub fn tokenizer_files(gguf: &Gguf, context_length: usize) -> Result<TokenizerFiles> {
    let path = gguf.path.display();
    let model = gguf.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
    let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
    let n = tokens.len();
    let types: Vec<i64> = match gguf.get("tokenizer.ggml.token_type") {
        None => vec![NORMAL; n],
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_f64().map(|x| x as i64)).collect::<Option<Vec<_>>>())
            .filter(|t| t.len() == n)
            .with_context(|| format!("{path}: tokenizer.ggml.token_type must be {n} integers, one per token"))?,
    };
    let added: Vec<Json> = (0..n)
        .filter(|&i| matches!(types[i], CONTROL | USER_DEFINED) || (model == "llama" && types[i] == UNKNOWN))
        .map(|i| {
            json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": types[i] != USER_DEFINED})
        })
        .collect();
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        // A duplicate spelling keeps its first id, as llama.cpp's token-to-id map does.
        vocab.entry(t.to_string()).or_insert(Json::from(i));
    }
    let bos = token_id(gguf, "tokenizer.ggml.bos_token_id", n);
    let eos = token_id(gguf, "tokenizer.ggml.eos_token_id", n);
    let eot = token_id(gguf, "tokenizer.ggml.eot_token_id", n);
    let unk = token_id(gguf, "tokenizer.ggml.unknown_token_id", n);
    let pad = token_id(gguf, "tokenizer.ggml.padding_token_id", n);
    let add_bos = gguf.get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool).unwrap_or(model == "llama");
    let add_eos = gguf.get("tokenizer.ggml.add_eos_token").and_then(Value::as_bool).unwrap_or(false);
    let tokenizer = match model {
        "gpt2" => {
            let pre = gguf.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
            let (regexes, ignore_merges) = pre_regexes(pre).with_context(|| path.to_string())?;
            let merges = strings(gguf, "tokenizer.ggml.merges")?
                .iter()
                .map(|m| {
                    let (a, b) = m.split_once(' ').with_context(|| format!("{path}: merge {m:?} is not two tokens"))?;
                    Ok(json!([a, b]))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut pretokenizers: Vec<Json> = regexes
                .iter()
                .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
                .collect();
            pretokenizers.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}));
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": null,
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": pretokenizers},
                "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
                "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                          "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                          "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
            })
        }
        "llama" => {
            let scores: Vec<f64> = match gguf.get("tokenizer.ggml.scores") {
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                    .filter(|s| s.len() == n)
                    .with_context(|| format!("{path}: tokenizer.ggml.scores must be {n} numbers"))?,
                None => bail!("{path}: a llama (SentencePiece) tokenizer needs tokenizer.ggml.scores"),
            };
            let merges = spm_merges(&tokens, &types, &scores);
            let bos_text = bos.map(|b| tokens[b]);
            let post = match (add_bos, bos_text) {
                (true, Some(b)) => json!({"type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": b, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {b: {"id": b, "ids": [bos.expect("with text")], "tokens": [b]}}}),
                _ => Json::Null,
            };
            let add_prefix = gguf.get("tokenizer.ggml.add_space_prefix").and_then(Value::as_bool).unwrap_or(true);
            let mut normalizers = Vec::new();
            if add_prefix {
                normalizers.push(json!({"type": "Prepend", "prepend": "▁"}));
            }
            normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"}));
            let mut decoders = vec![
                json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if add_prefix {
                decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": {"type": "Sequence", "normalizers": normalizers},
                "pre_tokenizer": null,
                "post_processor": post,
                "decoder": {"type": "Sequence", "decoders": decoders},
                "model": {"type": "BPE", "dropout": null, "unk_token": unk.map(|u| tokens[u]),
                          "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
                          "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges},
            })
        }
        other => bail!(
            "{path}: tokenizer.ggml.model {other:?} is not supported (supported: gpt2, byte-level BPE; llama, SentencePiece BPE)"
        ),
    };
    let text = |id: Option<usize>| id.map(|i| Json::from(tokens[i])).unwrap_or(Json::Null);
    let decoder: Map<String, Json> = added
        .iter()
        .map(|a| {
            let mut a = a.clone();
            let id = a["id"].to_string();
            a.as_object_mut().expect("object").remove("id");
            (id, a)
        })
        .collect();
    let mut config = json!({
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "added_tokens_decoder": decoder,
        "bos_token": text(bos),
        "eos_token": text(eos.or(eot)),
        "pad_token": text(pad),
        "unk_token": text(unk),
        "clean_up_tokenization_spaces": false,
        "model_max_length": context_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    if let Some(t) = gguf.get("tokenizer.chat_template") {
        let t = t.as_str().with_context(|| format!("{path}: tokenizer.chat_template must be a string"))?;
        config["chat_template"] = t.into();
    }
    let mut eos_ids: Vec<u32> = eos.into_iter().map(|e| e as u32).collect();
    if let Some(e) = eot.filter(|&e| Some(e) != eos) {
        eos_ids.push(e as u32);
    }
    Ok(TokenizerFiles { tokenizer, config, bos: bos.map(|b| b as u32), eos: eos_ids, pad: pad.map(|p| p as u32) })
}

/// Merges for a SentencePiece vocabulary, as transformers' `SentencePieceExtractor` derives them:
/// every way to split a normal token into two tokens of the vocabulary, ordered by the merged
/// token's score (best first; ties by vocabulary order, then by the ids of the two halves).
fn spm_merges(tokens: &[&str], types: &[i64], scores: &[f64]) -> Vec<Json> {
    let mut ids = std::collections::HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        ids.entry(*t).or_insert(i);
    }
    let mut merges: Vec<(f64, usize, usize, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if types[i] != NORMAL && types[i] != USER_DEFINED {
            continue;
        }
        let mut local: Vec<(usize, usize)> =
            t.char_indices().skip(1).filter_map(|(k, _)| Some((*ids.get(&t[..k])?, *ids.get(&t[k..])?))).collect();
        local.sort_unstable();
        merges.extend(local.into_iter().map(|(l, r)| (scores[i], i, l, r)));
    }
    // Stable: equal scores keep the vocabulary order.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges.into_iter().map(|(_, _, l, r)| json!([tokens[l], tokens[r]])).collect()
}
