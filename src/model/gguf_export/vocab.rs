//! The tokenizer metadata of an exported GGUF (`tokenizer.ggml.*`, `tokenizer.chat_template`),
//! built from a model directory's `tokenizer.json` and `tokenizer_config.json` read as plain JSON
//! (the model stage does not depend on the data stage's tokenizer). Follows llama.cpp's
//! `convert_hf_to_gguf.py`: byte-level BPE becomes the `gpt2` model with its merges and the
//! pre-tokenizer name llama.cpp knows it by (`get_vocab_base_pre`); Llama's SentencePiece-style BPE
//! (byte fallback) becomes the `llama` model with scores and byte tokens. Ids without a token up
//! to the model's vocabulary size become unused `[PAD{id}]` tokens, as the converter writes them.
use super::format::Value;
use anyhow::{bail, Context, Result};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;

/// llama.cpp's token types (`llama_token_type`, gguf-py's `TokenType`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// The Llama-3 pre-tokenizer regex (tokenizer.json's `Split` pattern), which llama.cpp calls
/// `llama-bpe`.
const LLAMA3_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// GPT-2's pre-tokenizer regex (what ByteLevel splits with when `use_regex` is set).
const GPT2_REGEX: &str = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

/// The `tokenizer.*` metadata of the model in `dir`, for a model of `vocab_size` ids whose
/// config names `bos`/`eos` ids (used when tokenizer_config.json does not name them).
pub fn metadata(dir: &Path, vocab_size: usize, bos: Option<u32>, eos: Option<u32>) -> Result<Vec<(String, Value)>> {
    let path = dir.join("tokenizer.json");
    let json = read_json(&path)?.with_context(|| {
        format!(
            "{}: no tokenizer.json; the GGUF needs the model's tokenizer: copy it into the model directory",
            dir.display()
        )
    })?;
    let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let model = &json["model"];
    if model["type"].as_str() != Some("BPE") {
        bail!(
            "{}: tokenizer model {} is not supported; the exporter writes BPE tokenizers (byte-level like GPT-2 and Llama 3, or Llama's with byte fallback)",
            path.display(),
            model["type"]
        );
    }
    let vocab =
        model["vocab"].as_object().with_context(|| format!("{}: model.vocab is not an object", path.display()))?;
    // Token texts by id: the base vocabulary, then added tokens (which win, as in transformers).
    let mut texts: Vec<Option<String>> = vec![None; vocab_size];
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut put = |texts: &mut Vec<Option<String>>, text: &str, id: u64| -> Result<()> {
        let slot = texts.get_mut(id as usize).with_context(|| {
            format!("{}: token {text:?} has id {id}, outside the model's vocabulary of {vocab_size}", path.display())
        })?;
        *slot = Some(text.to_string());
        ids.insert(text.to_string(), id as u32);
        Ok(())
    };
    for (text, id) in vocab {
        let id = id.as_u64().with_context(|| format!("{}: token {text:?} has no integer id", path.display()))?;
        put(&mut texts, text, id)?;
    }
    let mut added: HashMap<u32, bool> = HashMap::new(); // id -> special
    for t in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(text), Some(id)) = (t["content"].as_str(), t["id"].as_u64()) else {
            bail!("{}: an added token lacks its content or id: {t}", path.display());
        };
        put(&mut texts, text, id)?;
        added.insert(id as u32, t["special"].as_bool().unwrap_or(false));
    }
    let byte_fallback = model["byte_fallback"].as_bool().unwrap_or(false);
    let unk = model["unk_token"].as_str().and_then(|t| ids.get(t)).copied();
    let mut meta = Vec::new();
    let mut types = Vec::with_capacity(vocab_size);
    let mut tokens = Vec::with_capacity(vocab_size);
    for (id, text) in texts.iter().enumerate() {
        let id = id as u32;
        let (text, ty) = match text {
            None => (format!("[PAD{id}]"), UNUSED),
            Some(t) => match added.get(&id) {
                Some(&special) if special || looks_special(t) => (t.clone(), CONTROL),
                Some(_) => (t.clone(), USER_DEFINED),
                None if byte_fallback && Some(id) == unk => (t.clone(), UNKNOWN),
                None if byte_fallback && is_byte_token(t) => (t.clone(), BYTE),
                None => (t.clone(), NORMAL),
            },
        };
        tokens.push(text);
        types.push(ty);
    }
    let merges = merges(&model["merges"]).with_context(|| format!("{}: model.merges", path.display()))?;
    if byte_fallback {
        // SentencePiece-style BPE: llama.cpp merges the adjacent pair whose joined text is the
        // token of highest score. Scores from the merge order (a token made by merge r scores
        // -(r+1); others 0) make it pick the merges tokenizer.json ranks first.
        let mut scores = vec![0.0f32; vocab_size];
        for (rank, merge) in merges.iter().enumerate().rev() {
            if let Some(&id) = ids.get(&merge.replacen(' ', "", 1)) {
                scores[id as usize] = -(rank as f32 + 1.0);
            }
        }
        meta.push(("tokenizer.ggml.model".into(), Value::Str("llama".into())));
        meta.push(("tokenizer.ggml.pre".into(), Value::Str("default".into())));
        meta.push(("tokenizer.ggml.tokens".into(), Value::Strs(tokens)));
        meta.push(("tokenizer.ggml.scores".into(), Value::F32s(scores)));
        meta.push(("tokenizer.ggml.token_type".into(), Value::I32s(types)));
        meta.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(adds_space_prefix(&json))));
    } else {
        let pre = pre_tokenizer_name(&json["pre_tokenizer"]).with_context(|| {
            format!(
                "{}: llama.cpp knows no pre-tokenizer like {}; the GGUF would tokenize differently from this model",
                path.display(),
                json["pre_tokenizer"]
            )
        })?;
        meta.push(("tokenizer.ggml.model".into(), Value::Str("gpt2".into())));
        meta.push(("tokenizer.ggml.pre".into(), Value::Str(pre.into())));
        meta.push(("tokenizer.ggml.tokens".into(), Value::Strs(tokens)));
        meta.push(("tokenizer.ggml.token_type".into(), Value::I32s(types)));
        meta.push(("tokenizer.ggml.merges".into(), Value::Strs(merges)));
    }
    // Special tokens: tokenizer_config.json's `{kind}_token`, else the config's ids.
    let special = |kind: &str| -> Option<u32> {
        let v = &config[format!("{kind}_token")];
        let text = v.as_str().or_else(|| v["content"].as_str())?;
        ids.get(text).copied()
    };
    let bos_id = special("bos").or(bos);
    for (kind, id) in [
        ("bos", bos_id),
        ("eos", special("eos").or(eos)),
        ("unknown", special("unk").or(unk)),
        ("padding", special("pad")),
    ] {
        if let Some(id) = id {
            meta.push((format!("tokenizer.ggml.{kind}_token_id"), Value::U32(id)));
        }
    }
    let add_bos = config["add_bos_token"].as_bool().unwrap_or_else(|| {
        // Without the flag, transformers adds what the post-processor's template starts with.
        let first = &json["post_processor"]["single"][0]["SpecialToken"]["id"];
        first.as_str().is_some_and(|t| ids.get(t).copied() == bos_id)
            || (byte_fallback && json["post_processor"].is_null())
    });
    meta.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(add_bos)));
    meta.push(("tokenizer.ggml.add_eos_token".into(), Value::Bool(config["add_eos_token"].as_bool().unwrap_or(false))));
    if let Some(template) = chat_template(dir, &config)? {
        meta.push(("tokenizer.chat_template".into(), Value::Str(template)));
    }
    Ok(meta)
}

fn read_json(path: &Path) -> Result<Option<Json>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `<0x0A>`: a byte token of a byte-fallback vocabulary.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') && t[3..5].chars().all(|c| c.is_ascii_hexdigit())
}

/// Added tokens that are not flagged special but look it (the converter's
/// `does_token_look_special`): `<|...|>` and a few known spellings.
fn looks_special(t: &str) -> bool {
    (t.starts_with("<|") && t.ends_with("|>") && t.len() > 4)
        || matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<｜") && t.ends_with("｜>"))
}

/// Merges as llama.cpp stores them, `"a b"`: tokenizer.json writes them so, or (newer files) as
/// pairs.
fn merges(v: &Json) -> Result<Vec<String>> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::String(s) => Ok(s.clone()),
            Json::Array(pair) => match (pair.first().and_then(Json::as_str), pair.get(1).and_then(Json::as_str)) {
                (Some(a), Some(b)) if pair.len() == 2 => Ok(format!("{a} {b}")),
                _ => bail!("a merge is not a pair of strings: {m}"),
            },
            other => bail!("a merge is neither a string nor a pair: {other}"),
        })
        .collect()
}

/// The name llama.cpp gives a byte-level pre-tokenizer (`tokenizer.ggml.pre`): `gpt-2` for
/// GPT-2's regex, `llama-bpe` for Llama 3's split, `smollm` for individual digits then GPT-2's
/// regex (SmolLM, StarCoder), each in either spelling tokenizer.json allows (ByteLevel splitting
/// with its built-in regex, or explicit `Split`s before a ByteLevel that does not). `None` for any
/// other, which llama.cpp would split differently.
fn pre_tokenizer_name(pre: &Json) -> Option<&'static str> {
    let byte_level =
        |p: &Json, regex: bool| p["type"] == "ByteLevel" && p["use_regex"].as_bool().unwrap_or(true) == regex;
    let split = |p: &Json, regex: &str| {
        p["type"] == "Split" && p["pattern"]["Regex"] == regex && p["behavior"] == "Isolated" && p["invert"] != true
    };
    let digits =
        |p: &Json| (p["type"] == "Digits" && p["individual_digits"].as_bool() == Some(true)) || split(p, "\\p{N}");
    if byte_level(pre, true) {
        return Some("gpt-2");
    }
    let parts: Vec<&Json> = pre["pretokenizers"].as_array()?.iter().collect();
    match parts.as_slice() {
        [s, bl] if split(s, LLAMA3_REGEX) && byte_level(bl, false) => Some("llama-bpe"),
        [s, bl] if split(s, GPT2_REGEX) && byte_level(bl, false) => Some("gpt-2"),
        [d, bl] if digits(d) && byte_level(bl, true) => Some("smollm"),
        [d, s, bl] if digits(d) && split(s, GPT2_REGEX) && byte_level(bl, false) => Some("smollm"),
        _ => None,
    }
}

/// Whether a SentencePiece-style tokenizer puts `▁` before the text (Llama 1 and 2: a `Prepend`
/// normalizer, or a `Metaspace` pre-tokenizer that prepends).
fn adds_space_prefix(json: &Json) -> bool {
    let prepends = |n: &Json| n["type"] == "Prepend" && n["prepend"] == "\u{2581}";
    let normalizer = &json["normalizer"];
    let metaspace = |p: &Json| {
        p["type"] == "Metaspace"
            && (p["add_prefix_space"].as_bool() == Some(true)
                || p["prepend_scheme"].as_str().is_some_and(|s| s != "never"))
    };
    let pre = &json["pre_tokenizer"];
    prepends(normalizer)
        || normalizer["normalizers"].as_array().is_some_and(|a| a.iter().any(prepends))
        || metaspace(pre)
        || pre["pretokenizers"].as_array().is_some_and(|a| a.iter().any(metaspace))
}

/// The chat template: `chat_template.jinja` beside the tokenizer (newer transformers), else
/// tokenizer_config.json's `chat_template` (a string, or named templates of which `default` is
/// the one llama.cpp applies).
fn chat_template(dir: &Path, config: &Json) -> Result<Option<String>> {
    let file = dir.join("chat_template.jinja");
    if file.exists() {
        return Ok(Some(std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?));
    }
    Ok(match &config["chat_template"] {
        Json::String(s) => Some(s.clone()),
        Json::Array(named) => {
            named.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string)
        }
        _ => None,
    })
}
