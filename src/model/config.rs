//! LLaMA configuration in two stages (candle `llama.rs`, nanoGPT's `GPTConfig`): `HfConfig`
//! accepts a Hugging Face `config.json` as written, in both key styles (transformers 4's
//! `rope_theta`, `rope_scaling`, `torch_dtype`; transformers 5's `rope_parameters`, `dtype`), and
//! becomes an option-free `Config` before any layer sees it. Unknown or unsupported values are
//! refused with the key named.
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// How rotary position frequencies are rescaled for long contexts (transformers' `rope_type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (linear interpolation).
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows once a sequence exceeds `max_position_embeddings`.
    Dynamic { factor: f64 },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth band between.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
}

/// Everything a layer needs, with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key/value heads: fewer than attention heads means grouped-query attention.
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    /// The LM head shares the embedding matrix (no `lm_head.weight` in the checkpoint).
    pub tie_word_embeddings: bool,
    /// Biases on the q, k, v and o projections.
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The dtype the checkpoint was saved in (`float32`, `bfloat16`, `float16`), if stated.
    pub torch_dtype: Option<String>,
}

/// `config.json` as Hugging Face writes it.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    hidden_act: Option<String>,
    bos_token_id: Option<Value>,
    eos_token_id: Option<Value>,
    torch_dtype: Option<String>,
    dtype: Option<String>,
}

fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}

impl Config {
    /// Refuses a tokenizer with more tokens than the embedding has rows, naming both sizes and the
    /// model directory: its upper ids would crash the embedding at the first sample or prompt that
    /// uses them (training and inference both check this when they load).
    pub fn check_tokenizer(&self, tokens: usize, dir: &std::path::Path) -> Result<()> {
        if tokens > self.vocab_size {
            bail!(
                "{}: the tokenizer has {tokens} tokens but the model's embedding only {} rows (vocab_size in config.json), so ids {} and up cannot be embedded; use the tokenizer the model was trained with",
                dir.display(),
                self.vocab_size,
                self.vocab_size
            );
        }
        Ok(())
    }

    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("{}: not a supported Llama config", path.display()))
    }

    /// Parses the text of a `config.json`.
    pub fn parse(text: &str) -> Result<Config> {
        let hf: HfConfig = serde_json::from_str(text)?;
        if let Some(t) = hf.model_type.as_deref().filter(|t| !matches!(*t, "llama" | "mistral")) {
            bail!("model_type {t:?} is not supported; this loader reads the Llama family (model_type \"llama\")");
        }
        if let Some(act) = hf.hidden_act.as_deref().filter(|a| *a != "silu") {
            bail!("hidden_act {act:?} is not supported; Llama uses \"silu\"");
        }
        if hf.num_attention_heads == 0 || hf.hidden_size == 0 || hf.num_hidden_layers == 0 {
            bail!("hidden_size, num_hidden_layers and num_attention_heads must be positive");
        }
        if !(hf.rms_norm_eps.is_finite() && hf.rms_norm_eps > 0.0) {
            bail!("rms_norm_eps {} must be a positive number (Llama uses 1e-5 or 1e-6)", hf.rms_norm_eps);
        }
        if hf.vocab_size == 0 || hf.intermediate_size == 0 || hf.max_position_embeddings == 0 {
            bail!("vocab_size, intermediate_size and max_position_embeddings must be positive");
        }
        let num_key_value_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        if num_key_value_heads == 0 || hf.num_attention_heads % num_key_value_heads != 0 {
            bail!(
                "num_key_value_heads {num_key_value_heads} must divide num_attention_heads {}",
                hf.num_attention_heads
            );
        }
        let head_dim = hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads);
        if head_dim % 2 != 0 {
            bail!("head_dim {head_dim} must be even for rotary embeddings");
        }
        // transformers 5 keeps theta and scaling together in `rope_parameters`.
        let rope = hf.rope_parameters.as_ref().or(hf.rope_scaling.as_ref()).filter(|v| !v.is_null());
        let rope_theta =
            hf.rope_theta.or_else(|| rope.and_then(|r| r.get("rope_theta")).and_then(Value::as_f64)).unwrap_or(10000.0);
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            bail!("rope_theta {rope_theta} must be a positive number");
        }
        let rope_scaling = match rope {
            None => RopeScaling::None,
            Some(r) => rope_scaling(r, hf.max_position_embeddings)?,
        };
        let ids = |v: &Option<Value>, key: &str| -> Result<Vec<u32>> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Number(n)) => {
                    Ok(vec![n.as_u64().with_context(|| format!("{key} must be a token id"))? as u32])
                }
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_u64().map(|x| x as u32).with_context(|| format!("{key} must hold token ids")))
                    .collect(),
                Some(other) => bail!("{key} must be a token id or a list of them, not {other}"),
            }
        };
        Ok(Config {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: hf.max_position_embeddings,
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: hf.tie_word_embeddings,
            attention_bias: hf.attention_bias,
            mlp_bias: hf.mlp_bias,
            bos_token_id: ids(&hf.bos_token_id, "bos_token_id")?.first().copied(),
            eos_token_ids: ids(&hf.eos_token_id, "eos_token_id")?,
            torch_dtype: hf.dtype.or(hf.torch_dtype),
        })
    }

    /// Number of parameters (the LM head counted once when tied).
    pub fn parameter_count(&self) -> usize {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let attn = h * q + 2 * h * kv + q * h + if self.attention_bias { q + 2 * kv + h } else { 0 };
        let mlp = 3 * h * i + if self.mlp_bias { 2 * i + h } else { 0 };
        let layer = attn + mlp + 2 * h;
        v * h + self.num_hidden_layers * layer + h + if self.tie_word_embeddings { 0 } else { v * h }
    }

    /// The `config.json` transformers writes for this configuration (transformers 4 key style,
    /// which transformers 5 also reads).
    pub fn to_hf_json(&self, dtype: &str) -> Value {
        let rope_scaling = match self.rope_scaling {
            RopeScaling::None => Value::Null,
            RopeScaling::Linear { factor } => serde_json::json!({"rope_type": "linear", "factor": factor}),
            RopeScaling::Dynamic { factor } => serde_json::json!({"rope_type": "dynamic", "factor": factor}),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                serde_json::json!({
                    "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_position_embeddings as u64,
                })
            }
        };
        let eos: Value = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => (*one).into(),
            many => many.iter().map(|&x| Value::from(x)).collect(),
        };
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "attention_dropout": 0.0,
            "mlp_bias": self.mlp_bias,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "torch_dtype": dtype,
            "use_cache": true,
        })
    }
}

fn rope_scaling(r: &Value, max_positions: usize) -> Result<RopeScaling> {
    let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(Value::as_str).unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        r.get(key).and_then(Value::as_f64).with_context(|| format!("rope scaling {kind:?} needs a number for {key:?}"))
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: num("factor")? },
        "dynamic" => RopeScaling::Dynamic { factor: num("factor")? },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: r
                .get("original_max_position_embeddings")
                .and_then(Value::as_f64)
                .unwrap_or(max_positions as f64),
        },
        other => bail!("rope_type {other:?} is not supported (supported: default, linear, dynamic, llama3)"),
    })
}

/// Ready-made sizes for `vicuna model init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// 2 layers, hidden 64, 4 heads (2 kv heads): a few MB, for tests and the demo.
    Tiny,
    /// 8 layers, hidden 512, 8 heads, intermediate 1376: the CPU benchmark model.
    Small,
    /// LLaMA-7B shape (32 layers, hidden 4096).
    #[value(name = "7b")]
    L7b,
    /// LLaMA-13B shape (40 layers, hidden 5120).
    #[value(name = "13b")]
    L13b,
}

impl Preset {
    /// The configuration of this preset for a vocabulary of `vocab_size` tokens.
    pub fn config(self, vocab_size: usize, bos: Option<u32>, eos: Vec<u32>) -> Config {
        let (hidden, inter, layers, heads, kv, ctx) = match self {
            Preset::Tiny => (64, 172, 2, 4, 2, 2048),
            Preset::Small => (512, 1376, 8, 8, 8, 2048),
            Preset::L7b => (4096, 11008, 32, 32, 32, 2048),
            Preset::L13b => (5120, 13824, 40, 40, 40, 2048),
        };
        Config {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: hidden / heads,
            max_position_embeddings: ctx,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: bos,
            eos_token_ids: eos,
            torch_dtype: Some("float32".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_key_styles_parse_to_the_same_config() {
        let classic = r#"{"model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
            "num_attention_heads": 8, "num_key_value_heads": 2, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            "eos_token_id": [1, 2], "bos_token_id": 0, "max_position_embeddings": 256, "rms_norm_eps": 1e-5}"#;
        let tf5 = r#"{"model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
            "num_attention_heads": 8, "num_key_value_heads": 2, "dtype": "bfloat16",
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            "eos_token_id": [1, 2], "bos_token_id": 0, "max_position_embeddings": 256, "rms_norm_eps": 1e-5}"#;
        let (a, b) = (Config::parse(classic).unwrap(), Config::parse(tf5).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.head_dim, 8);
        assert_eq!(a.eos_token_ids, [1, 2]);
        assert_eq!(Config::parse(&a.to_hf_json("bfloat16").to_string()).unwrap(), a);
    }

    #[test]
    fn unsupported_values_name_the_key() {
        let base = r#""vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2"#;
        let err = |extra: &str| Config::parse(&format!("{{{base}, {extra}}}")).unwrap_err().to_string();
        assert_eq!(
            err(r#""model_type": "gpt2""#),
            "model_type \"gpt2\" is not supported; this loader reads the Llama family (model_type \"llama\")"
        );
        assert_eq!(
            err(r#""rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#),
            "rope_type \"yarn\" is not supported (supported: default, linear, dynamic, llama3)"
        );
        assert_eq!(err(r#""num_key_value_heads": 3"#), "num_key_value_heads 3 must divide num_attention_heads 2");
        assert_eq!(err(r#""hidden_act": "gelu""#), "hidden_act \"gelu\" is not supported; Llama uses \"silu\"");
    }
}
