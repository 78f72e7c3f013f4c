//! `vicuna model import FILE.gguf -o DIR`: a llama-architecture GGUF file (what llama.cpp's
//! `convert_hf_to_gguf.py` writes) back to a Hugging Face directory. The converter's steps are
//! undone: tensor names map back to HF names, the Q and K projections get their rows back in HF's
//! rotary layout (the converter's `permute` interleaved the two halves of each head), a missing
//! `output.weight` means tied embeddings, and `config.json`, `generation_config.json` and the
//! tokenizer files come from the metadata. Weights stream shard by shard (one tensor dequantized
//! at a time) into a temporary directory that is renamed into place at the end.
use super::reader::{Gguf, Value};
use super::vocab::tokenizer_files;
use crate::model::config::{Config, RopeScaling};
use crate::model::weights::save_streamed;
use crate::util::{atomic, progress::progress_bar};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// What an import produced, for the command's summary line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    /// The new model directory.
    pub output: std::path::PathBuf,
    pub layers: usize,
    pub parameters: usize,
    pub tensors: usize,
    pub tied_embeddings: bool,
    pub tokenizer: String,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "imported into {}: {} tensors, {} layers, {} parameters, {} tokenizer{}",
            self.output.display(),
            self.tensors,
            self.layers,
            self.parameters,
            self.tokenizer,
            if self.tied_embeddings { ", tied embeddings" } else { "" }
        )
    }
}

/// A metadata number under `{arch}.{key}`, required.
fn hparam(g: &Gguf, arch: &str, key: &str) -> Result<u64> {
    let full = format!("{arch}.{key}");
    match g.get(&full) {
        Some(v) => v.as_u64().with_context(|| {
            format!(
                "{}: {full} must be one non-negative integer (per-layer values are not supported), not {v:?}",
                g.path.display()
            )
        }),
        None => bail!("{}: no {full} in the metadata; the file does not describe a llama model", g.path.display()),
    }
}

/// Hyper-parameters of the file as our `Config` (token ids filled in later).
fn config_of(g: &Gguf) -> Result<Config> {
    let path = g.path.display();
    let arch = g.get("general.architecture").and_then(Value::as_str).unwrap_or("(missing)");
    if arch != "llama" {
        bail!(
            "{path}: general.architecture is {arch:?}; only the llama architecture (Llama, Mistral, SmolLM and other Llama-shaped models) can be imported"
        );
    }
    let hidden = hparam(g, arch, "embedding_length")? as usize;
    let heads = hparam(g, arch, "attention.head_count")? as usize;
    let kv_heads = match g.get("llama.attention.head_count_kv") {
        None => heads,
        Some(_) => hparam(g, arch, "attention.head_count_kv")? as usize,
    };
    ensure!(
        heads > 0 && kv_heads > 0 && heads % kv_heads == 0,
        "{path}: {heads} heads and {kv_heads} key/value heads do not fit"
    );
    let head_dim = match g.get("llama.attention.key_length") {
        Some(_) => hparam(g, arch, "attention.key_length")? as usize,
        None => hidden / heads,
    };
    if let Some(rot) = g.get("llama.rope.dimension_count").and_then(Value::as_u64) {
        ensure!(rot as usize == head_dim, "{path}: llama.rope.dimension_count {rot} differs from the head size {head_dim} (partial rotary embeddings are not Llama)");
    }
    let float = |key: &str, default: f64| -> Result<f64> {
        match g.get(key) {
            None => Ok(default),
            // An f32 as the decimal it was written from (1e-5, not 9.999999747378752e-6).
            Some(Value::F32(v)) => Ok(v.to_string().parse().expect("a float prints as a float")),
            Some(v) => v.as_f64().with_context(|| format!("{path}: {key} must be a number, not {v:?}")),
        }
    };
    let rope_scaling = match g.get("llama.rope.scaling.type").and_then(Value::as_str) {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear { factor: float("llama.rope.scaling.factor", 1.0)? },
        Some(other) => bail!("{path}: llama.rope.scaling.type {other:?} is not supported (none, linear)"),
    };
    if g.tensor("rope_freqs.weight").is_some() {
        bail!("{path}: the file carries rope_freqs.weight (Llama 3.1 rope scaling), which this importer does not convert back");
    }
    let embed = g
        .tensor("token_embd.weight")
        .with_context(|| format!("{path}: no token_embd.weight tensor; not a llama model file"))?;
    Ok(Config {
        vocab_size: embed.hf_shape()[0] as usize,
        hidden_size: hidden,
        intermediate_size: hparam(g, arch, "feed_forward_length")? as usize,
        num_hidden_layers: hparam(g, arch, "block_count")? as usize,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        max_position_embeddings: g.get("llama.context_length").and_then(Value::as_u64).unwrap_or(2048) as usize,
        rms_norm_eps: float("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
        rope_theta: float("llama.rope.freq_base", 10000.0)?,
        rope_scaling,
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        attention_bias: false,
        mlp_bias: false,
        bos_token_id: None,
        eos_token_ids: Vec::new(),
        torch_dtype: None,
    })
}

/// How an HF tensor comes out of the file: its GGUF name and, for Q and K, the number of heads
/// whose rows the converter permuted.
struct Source {
    hf: String,
    gguf: String,
    shape: Vec<i64>,
    unpermute_heads: Option<i64>,
}

/// Every tensor of the HF checkpoint in HF order, with where it comes from.
fn plan(c: &Config) -> Vec<Source> {
    let (h, i) = (c.hidden_size as i64, c.intermediate_size as i64);
    let (q, kv) = ((c.num_attention_heads * c.head_dim) as i64, (c.num_key_value_heads * c.head_dim) as i64);
    let s = |hf: String, gguf: String, shape: Vec<i64>| Source { hf, gguf, shape, unpermute_heads: None };
    let mut out = vec![s("model.embed_tokens.weight".into(), "token_embd.weight".into(), vec![c.vocab_size as i64, h])];
    for l in 0..c.num_hidden_layers {
        let (p, b) = (format!("model.layers.{l}."), format!("blk.{l}."));
        out.push(s(format!("{p}input_layernorm.weight"), format!("{b}attn_norm.weight"), vec![h]));
        let mut qp = s(format!("{p}self_attn.q_proj.weight"), format!("{b}attn_q.weight"), vec![q, h]);
        qp.unpermute_heads = Some(c.num_attention_heads as i64);
        out.push(qp);
        let mut kp = s(format!("{p}self_attn.k_proj.weight"), format!("{b}attn_k.weight"), vec![kv, h]);
        kp.unpermute_heads = Some(c.num_key_value_heads as i64);
        out.push(kp);
        out.push(s(format!("{p}self_attn.v_proj.weight"), format!("{b}attn_v.weight"), vec![kv, h]));
        out.push(s(format!("{p}self_attn.o_proj.weight"), format!("{b}attn_output.weight"), vec![h, q]));
        out.push(s(format!("{p}post_attention_layernorm.weight"), format!("{b}ffn_norm.weight"), vec![h]));
        out.push(s(format!("{p}mlp.gate_proj.weight"), format!("{b}ffn_gate.weight"), vec![i, h]));
        out.push(s(format!("{p}mlp.up_proj.weight"), format!("{b}ffn_up.weight"), vec![i, h]));
        out.push(s(format!("{p}mlp.down_proj.weight"), format!("{b}ffn_down.weight"), vec![h, i]));
    }
    out.push(s("model.norm.weight".into(), "output_norm.weight".into(), vec![h]));
    if !c.tie_word_embeddings {
        out.push(s("lm_head.weight".into(), "output.weight".into(), vec![c.vocab_size as i64, h]));
    }
    out
}

/// Undoes llama.cpp's `permute` of a Q or K weight `[heads * head_dim, in]`: the converter
/// reshaped each head's rows to `[2, head_dim / 2]` and swapped the axes (interleaving the two
/// rotary halves); reshaping to `[head_dim / 2, 2]` and swapping back restores HF's order.
pub fn unpermute(w: &Tensor, heads: i64) -> Tensor {
    let (rows, cols) = (w.size()[0], w.size()[1]);
    w.reshape([heads, rows / heads / 2, 2, cols]).transpose(1, 2).reshape([rows, cols])
}

/// llama.cpp's `permute`, the inverse of [`unpermute`] (for GGUF export).
pub fn permute(w: &Tensor, heads: i64) -> Tensor {
    let (rows, cols) = (w.size()[0], w.size()[1]);
    w.reshape([heads, 2, rows / heads / 2, cols]).transpose(1, 2).reshape([rows, cols])
}

/// Imports `input` into the new directory `out` with weights stored as `kind`, in safetensors
/// shards of at most `max_shard_bytes`.
pub fn import(input: &Path, out: &Path, kind: Kind, max_shard_bytes: usize) -> Result<Imported> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty; remove it or choose another -o", out.display());
    }
    let g = Gguf::open(input)?;
    let mut config = config_of(&g)?;
    let tok = tokenizer_files(&g, config.max_position_embeddings)?;
    config.bos_token_id = tok.bos;
    config.eos_token_ids = tok.eos.clone();
    config.torch_dtype = Some(dtype_name(kind).into());
    let plan = plan(&config);
    for s in &plan {
        let info = g
            .tensor(&s.gguf)
            .with_context(|| format!("{}: tensor {} is missing (needed for {})", input.display(), s.gguf, s.hf))?;
        ensure!(
            info.hf_shape() == s.shape,
            "{}: tensor {} has shape {:?}, the metadata implies {:?} for {}",
            input.display(),
            s.gguf,
            info.hf_shape(),
            s.shape,
            s.hf
        );
    }
    let used: std::collections::HashSet<&str> = plan.iter().map(|s| s.gguf.as_str()).collect();
    if let Some(extra) = g.tensors.iter().find(|t| !used.contains(t.name.as_str())) {
        bail!(
            "{}: tensor {} ({}) has no place in a Llama checkpoint; this file is not a plain llama model",
            input.display(),
            extra.name,
            extra.ggml_type.name()
        );
    }
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let tmp = atomic::beside(out, ".", &format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let bar = progress_bar(plan.len() as u64, "import", "tensors");
        let shapes: Vec<(String, Vec<i64>)> = plan.iter().map(|s| (s.hf.clone(), s.shape.clone())).collect();
        save_streamed(&config, &tmp, kind, max_shard_bytes, None, &shapes, &mut |i| {
            let s = &plan[i];
            let mut t = g.dequantize(&s.gguf, Kind::Float)?;
            if let Some(heads) = s.unpermute_heads {
                t = unpermute(&t, heads);
            }
            bar.inc(1);
            Ok(t.to_kind(kind))
        })?;
        bar.finish_and_clear();
        write_json(&tmp.join("tokenizer.json"), &tok.tokenizer)?;
        write_json(&tmp.join("tokenizer_config.json"), &tok.config)?;
        // config.json and generation_config.json as save_streamed wrote them, plus the pad id.
        for file in ["config.json", "generation_config.json"] {
            let path = tmp.join(file);
            let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            v["pad_token_id"] = tok.pad.into();
            write_json(&path, &v)?;
        }
        Config::load(&tmp.join("config.json"))?;
        std::fs::rename(&tmp, out).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
        atomic::sync_parent(out);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("importing {} into {name}", input.display()));
    }
    Ok(Imported {
        output: out.to_path_buf(),
        layers: config.num_hidden_layers,
        parameters: config.parameter_count(),
        tensors: plan.len(),
        tied_embeddings: config.tie_word_embeddings,
        tokenizer: g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("?").to_string(),
    })
}

fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        _ => "float32",
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    atomic::write_bytes(path, serde_json::to_string_pretty(v)?.as_bytes())
}
