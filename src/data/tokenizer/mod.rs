//! Tokenizers: any Hugging Face `tokenizer.json` (Llama-1/2 SentencePiece BPE with byte fallback,
//! Llama-3 byte-level BPE, ...) through the `tokenizers` crate, with its special tokens resolved the
//! way `transformers` does: `tokenizer_config.json` first, then `generation_config.json` and
//! `config.json` (token ids), then the tokenizer's own added tokens, with flags to override.
//! Text is always encoded without adding special tokens: templates write BOS and end-of-turn
//! tokens into the text themselves, so what is trained is exactly what inference sees.
//! Llama-2-style tokenizers encode through an exact fast path (the private submodule `fast`: same
//! ids and offsets, much faster); set `VICUNA_NO_FAST_TOKENIZER=1` to force the plain `tokenizers`
//! encoder (for comparisons). `bpe_train` trains small byte-level tokenizers for tiny models.
pub mod bpe_train;
mod fast;

use anyhow::{anyhow, bail, Context, Result};
use fast::FastEncoder;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A special token: its text as it appears in rendered prompts, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Special {
    pub text: String,
    pub id: u32,
}

/// Special tokens given on the command line; they win over every file.
#[derive(Debug, Clone, Default)]
pub struct SpecialOverrides {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub pad: Option<String>,
}

/// Token ids with the byte range of the text each token came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// Byte offsets into the encoded text, one `(start, end)` per id.
    pub offsets: Vec<(usize, usize)>,
}

/// A loaded tokenizer with its special tokens and chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Beginning of sequence, written at the start of every rendered conversation when present.
    pub bos: Option<Special>,
    /// End of sequence: ends each assistant turn in the templates that use it.
    pub eos: Option<Special>,
    /// Padding token (the trainer masks padded positions, so any id works; FastChat uses unk).
    pub pad: Option<Special>,
    /// The tokenizer's own Jinja chat template (`tokenizer_config.json`), if it has one.
    pub chat_template: Option<String>,
    /// The exact fast path, or why it does not apply to this tokenizer (see the `fast` module).
    fast: std::result::Result<FastEncoder, String>,
}

impl Tokenizer {
    /// Loads `path`: a `tokenizer.json` file or a directory holding one (and, optionally,
    /// `tokenizer_config.json`, `generation_config.json`, `config.json`).
    pub fn load(path: &Path, overrides: &SpecialOverrides) -> Result<Tokenizer> {
        let (dir, file) = if path.is_dir() {
            (path.to_path_buf(), path.join("tokenizer.json"))
        } else {
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), path.to_path_buf())
        };
        if !file.exists() {
            bail!(
                "{}: no tokenizer.json; pass a tokenizer.json file or a model directory that holds one",
                path.display()
            );
        }
        let inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| anyhow!("{}: not a valid tokenizer.json: {e}", file.display()))?;
        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let generation = read_json(&dir.join("generation_config.json"))?;
        let model = read_json(&dir.join("config.json"))?;
        // VICUNA_NO_FAST_TOKENIZER=1 keeps the plain encoder, to check the fast one against it.
        let fast = match std::env::var_os("VICUNA_NO_FAST_TOKENIZER") {
            Some(v) if !v.is_empty() && v != "0" => Err("VICUNA_NO_FAST_TOKENIZER is set".to_string()),
            _ => FastEncoder::try_new(&inner),
        };
        let mut tok = Tokenizer { inner, path: file, bos: None, eos: None, pad: None, chat_template: None, fast };
        let add_bos = config.as_ref().and_then(|c| c.get("add_bos_token")).and_then(Value::as_bool).unwrap_or(true);
        let sources = [config.as_ref(), generation.as_ref(), model.as_ref()];
        tok.bos =
            if add_bos { tok.resolve("bos", &overrides.bos, &sources, &["<s>", "<|begin_of_text|>"])? } else { None };
        tok.eos =
            tok.resolve("eos", &overrides.eos, &sources, &["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"])?;
        tok.pad = tok.resolve("pad", &overrides.pad, &sources, &["<pad>", "<unk>", "<|finetune_right_pad_id|>"])?;
        tok.chat_template = config.as_ref().and_then(|c| chat_template(c.get("chat_template")?));
        Ok(tok)
    }

    /// Finds one special token: the override, then `{kind}_token` in tokenizer_config.json, then
    /// `{kind}_token_id` in generation_config.json or config.json, then the first known spelling
    /// present in the vocabulary.
    fn resolve(
        &self,
        kind: &str,
        given: &Option<String>,
        sources: &[Option<&Value>],
        known: &[&str],
    ) -> Result<Option<Special>> {
        if let Some(text) = given {
            let id = self.inner.token_to_id(text).with_context(|| {
                format!("--{kind}-token {text:?} is not in the vocabulary of {}", self.path.display())
            })?;
            return Ok(Some(Special { text: text.clone(), id }));
        }
        if let Some(text) = sources[0].and_then(|c| token_text(c.get(&format!("{kind}_token"))?)) {
            if let Some(id) = self.inner.token_to_id(&text) {
                return Ok(Some(Special { text, id }));
            }
        }
        for source in &sources[1..] {
            let id = source.and_then(|c| c.get(&format!("{kind}_token_id"))).and_then(|v| match v {
                Value::Array(a) => a.first().and_then(Value::as_u64),
                v => v.as_u64(),
            });
            if let Some((id, text)) = id.and_then(|id| Some((id as u32, self.inner.id_to_token(id as u32)?))) {
                return Ok(Some(Special { text, id }));
            }
        }
        Ok(known.iter().find_map(|t| self.inner.token_to_id(t).map(|id| Special { text: t.to_string(), id })))
    }

    /// Encodes `text` as is (special-token strings in it become their ids; nothing is added).
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        if let Ok(fast) = &self.fast {
            return fast.encode(text).map_err(|e| anyhow!("tokenizer {}: {e}", self.path.display()));
        }
        let e = self.inner.encode(text, false).map_err(|e| anyhow!("tokenizer {}: {e}", self.path.display()))?;
        Ok(Encoding { ids: e.get_ids().to_vec(), offsets: e.get_offsets().to_vec() })
    }

    /// Turns ids back into text (special tokens kept unless `skip_special`).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| anyhow!("tokenizer {}: {e}", self.path.display()))
    }

    /// The text of one token as the vocabulary spells it (`▁Hello`, `<0x0A>`, `Ġworld`).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token spelled as in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The ids this tokenizer can produce: its largest id (added tokens included) plus one, which
    /// the model's embedding must have rows for. Not the number of tokens: ids may have gaps.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab(true).values().max().map_or(0, |&id| id as usize + 1)
    }

    /// Whether `text` is one of the tokenizer's special added tokens (`</s>`, `<|eot_id|>`, ...).
    pub fn is_special(&self, text: &str) -> bool {
        self.inner.get_added_vocabulary().get_added_tokens_decoder().values().any(|t| t.special && t.content == text)
    }

    /// Whether `encode` takes the fast path (a Llama-2-style tokenizer, and
    /// `VICUNA_NO_FAST_TOKENIZER` unset).
    pub fn is_fast(&self) -> bool {
        self.fast.is_ok()
    }

    /// Why `encode` does not take the fast path (`None` when it does), for tests and logs.
    pub fn slow_because(&self) -> Option<&str> {
        self.fast.as_ref().err().map(String::as_str)
    }

    /// The underlying `tokenizers` object (the plain encoder the fast path is checked against).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A special token in tokenizer_config.json: a string or `{"content": ...}`.
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// `chat_template` is a string, or a list of `{name, template}` where `default` is the one to use.
fn chat_template(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    }
}
