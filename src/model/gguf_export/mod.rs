//! `vicuna model export`: a Hugging Face Llama directory to one GGUF v3 file that llama.cpp (and
//! Ollama, LM Studio) loads. Follows llama.cpp's `convert_hf_to_gguf.py` for a `LlamaForCausalLM`:
//! the `llama.*` metadata it writes, its tensor names (`token_embd`, `blk.N.attn_q`, ...), Q and K
//! projections permuted from HF's rotate-half layout to llama.cpp's interleaved rope layout
//! (`LlamaModel.permute`), 1-D tensors kept in F32 whatever the output type, a 2-D tensor whose
//! rows are not a multiple of 32 written F16 when Q8_0 cannot hold it, tied embeddings without an
//! `output.weight`, and Llama 3.1 rope scaling as a `rope_freqs` tensor. The model is read through
//! the memory map one tensor at a time and the file is written atomically.
pub mod format;
mod vocab;

use super::config::{Config, RopeScaling};
use super::weights;
use crate::util::{atomic, progress::progress_bar};
use anyhow::{bail, Context, Result};
use format::{GgmlType, TensorInfo, Value};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The element type of the exported weight matrices (`--outtype`, as llama.cpp's converter names
/// them); norms and other 1-D tensors are always F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutType {
    F32,
    F16,
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
}

impl OutType {
    fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Bf16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// llama.cpp's `general.file_type` (`LlamaFileType`): ALL_F32, MOSTLY_F16, MOSTLY_BF16,
    /// MOSTLY_Q8_0.
    fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Bf16 => 32,
            OutType::Q8_0 => 7,
        }
    }
}

/// What an export wrote, for the command's summary line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub tensors: usize,
    pub bytes: u64,
    /// Matrices written F16 because Q8_0 cannot hold rows of their length.
    pub f16_fallbacks: Vec<String>,
}

impl std::fmt::Display for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} tensors, {} bytes", self.tensors, self.bytes)?;
        if !self.f16_fallbacks.is_empty() {
            write!(f, " ({} written F16: rows not a multiple of 32)", self.f16_fallbacks.len())?;
        }
        Ok(())
    }
}

/// Where one GGUF tensor's values come from.
enum Source {
    /// An HF tensor, as stored.
    Plain(String),
    /// An HF q or k projection (weight or bias), permuted for `heads` heads.
    Rope { name: String, heads: i64 },
    /// Values computed here (Llama 3.1's rope frequency factors).
    Computed(Vec<f32>),
}

/// Exports the model in `dir` to `out` as GGUF with matrices in `outtype`.
pub fn export(dir: &Path, out: &Path, outtype: OutType) -> Result<Exported> {
    if !dir.is_dir() {
        bail!("{}: no such model directory; pass a Hugging Face model directory (config.json, safetensors, tokenizer.json)", dir.display());
    }
    let config_path = dir.join("config.json");
    let config = Config::load(&config_path)?;
    let mut inputs = weights::weight_files(dir)?;
    inputs.push(config_path);
    let input_refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    atomic::ensure_distinct(&input_refs, &[("--output", out)])?;
    // Checks every tensor's name and shape against the config; reads nothing yet.
    let (_, checkpoint) = weights::open_model(dir, Kind::Float, Device::Cpu)?;
    let mut metadata = llama_metadata(&config, dir, outtype)?;
    metadata.extend(vocab::metadata(
        dir,
        config.vocab_size,
        config.bos_token_id,
        config.eos_token_ids.first().copied(),
    )?);

    let plan = tensor_plan(&config)?;
    let mut infos = Vec::with_capacity(plan.len());
    let mut f16_fallbacks = Vec::new();
    for (name, shape, _) in &plan {
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let ty = match (shape.len(), outtype.ggml()) {
            (1, _) | (_, GgmlType::F32) => GgmlType::F32,
            (_, GgmlType::Q8_0) if dims[0] % format::QK8_0 as u64 != 0 => {
                f16_fallbacks.push(name.clone());
                GgmlType::F16
            }
            (_, ty) => ty,
        };
        infos.push(TensorInfo { name: name.clone(), dims, ty });
    }
    let header = format::header(&metadata, &infos);
    let bar = progress_bar(plan.len() as u64, "export", "tensors");
    let bytes = atomic::write_file(out, |w| {
        use std::io::Write;
        w.write_all(&header).with_context(|| format!("cannot write {}", out.display()))?;
        let mut total = header.len() as u64;
        for ((name, shape, source), info) in plan.iter().zip(&infos) {
            let tensor = match source {
                Source::Plain(hf) => read(&checkpoint, hf, shape)?,
                Source::Rope { name: hf, heads } => permute(&read(&checkpoint, hf, shape)?, *heads),
                Source::Computed(values) => Tensor::from_slice(values),
            };
            let data = format::encode(&tensor, info.ty).with_context(|| format!("tensor {name}"))?;
            debug_assert_eq!(data.len() as u64, info.data_bytes());
            format::write_padded(w, &data).with_context(|| format!("cannot write {}", out.display()))?;
            total += format::align(data.len() as u64);
            bar.inc(1);
        }
        Ok(total)
    })?;
    bar.finish_and_clear();
    Ok(Exported { tensors: plan.len(), bytes, f16_fallbacks })
}

/// Tensor `name` of the checkpoint, all of it, as f32 with `shape`.
fn read(checkpoint: &weights::Checkpoint, name: &str, shape: &[i64]) -> Result<Tensor> {
    let numel = shape.iter().product();
    Ok(checkpoint.read_flat(name, 0, numel, Kind::Float, Device::Cpu)?.reshape(shape))
}

/// llama.cpp's rope layout for a q or k projection (`LlamaModel.permute` in the converter): within
/// each head, HF orders the output rows as the first halves of the rotated pairs, then the second
/// halves; llama.cpp wants each pair's two rows adjacent. Rows `(head, half, i)` become
/// `(head, i, half)`. Works on weights `[rows, cols]` and biases `[rows]` alike.
pub fn permute(t: &Tensor, heads: i64) -> Tensor {
    let shape = t.size();
    let mut split = vec![heads, 2, shape[0] / heads / 2];
    split.extend_from_slice(&shape[1..]);
    t.reshape(&split).transpose(1, 2).contiguous().reshape(&shape)
}

/// The `general.*` and `llama.*` keys, as the converter writes them for a Llama model.
fn llama_metadata(config: &Config, dir: &Path, outtype: OutType) -> Result<Vec<(String, Value)>> {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let u32_of = |v: usize, key: &str| -> Result<Value> {
        u32::try_from(v).map(Value::U32).with_context(|| format!("{key} {v} does not fit GGUF's uint32"))
    };
    let mut m: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str("llama".into())),
        ("general.type".into(), Value::Str("model".into())),
        ("general.name".into(), Value::Str(name)),
        ("general.alignment".into(), Value::U32(format::ALIGNMENT as u32)),
        ("llama.block_count".into(), u32_of(config.num_hidden_layers, "num_hidden_layers")?),
        ("llama.context_length".into(), u32_of(config.max_position_embeddings, "max_position_embeddings")?),
        ("llama.embedding_length".into(), u32_of(config.hidden_size, "hidden_size")?),
        ("llama.feed_forward_length".into(), u32_of(config.intermediate_size, "intermediate_size")?),
        ("llama.attention.head_count".into(), u32_of(config.num_attention_heads, "num_attention_heads")?),
        ("llama.attention.head_count_kv".into(), u32_of(config.num_key_value_heads, "num_key_value_heads")?),
        ("llama.rope.freq_base".into(), Value::F32(config.rope_theta as f32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(config.rms_norm_eps as f32)),
        ("llama.attention.key_length".into(), u32_of(config.head_dim, "head_dim")?),
        ("llama.attention.value_length".into(), u32_of(config.head_dim, "head_dim")?),
        ("general.file_type".into(), Value::U32(outtype.file_type())),
        ("llama.vocab_size".into(), u32_of(config.vocab_size, "vocab_size")?),
        ("llama.rope.dimension_count".into(), u32_of(config.head_dim, "head_dim")?),
    ];
    match config.rope_scaling {
        RopeScaling::None | RopeScaling::Llama3 { .. } => {}
        RopeScaling::Linear { factor } => {
            m.push(("llama.rope.scaling.type".into(), Value::Str("linear".into())));
            m.push(("llama.rope.scaling.factor".into(), Value::F32(factor as f32)));
        }
        RopeScaling::Dynamic { .. } => bail!(
            "{}: dynamic NTK rope scaling has no llama.cpp equivalent for Llama models; export a model without it (remove rope_scaling from config.json)",
            dir.display()
        ),
    }
    Ok(m)
}

/// Every GGUF tensor in file order: its name, its PyTorch shape and where its values come from.
fn tensor_plan(c: &Config) -> Result<Vec<(String, Vec<i64>, Source)>> {
    let (h, i, v) = (c.hidden_size as i64, c.intermediate_size as i64, c.vocab_size as i64);
    let (q, kv) = ((c.num_attention_heads * c.head_dim) as i64, (c.num_key_value_heads * c.head_dim) as i64);
    let (heads, kv_heads) = (c.num_attention_heads as i64, c.num_key_value_heads as i64);
    let plain = |n: String| Source::Plain(n);
    let mut plan = vec![("token_embd.weight".to_string(), vec![v, h], plain("model.embed_tokens.weight".into()))];
    if let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } =
        c.rope_scaling
    {
        let factors = llama3_rope_factors(
            c.rope_theta,
            c.head_dim,
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        );
        plan.push(("rope_freqs.weight".into(), vec![factors.len() as i64], Source::Computed(factors)));
    }
    for l in 0..c.num_hidden_layers {
        let hf = |s: &str| format!("model.layers.{l}.{s}");
        let gg = |s: &str| format!("blk.{l}.{s}");
        plan.push((gg("attn_norm.weight"), vec![h], plain(hf("input_layernorm.weight"))));
        plan.push((gg("attn_q.weight"), vec![q, h], Source::Rope { name: hf("self_attn.q_proj.weight"), heads }));
        plan.push((
            gg("attn_k.weight"),
            vec![kv, h],
            Source::Rope { name: hf("self_attn.k_proj.weight"), heads: kv_heads },
        ));
        plan.push((gg("attn_v.weight"), vec![kv, h], plain(hf("self_attn.v_proj.weight"))));
        plan.push((gg("attn_output.weight"), vec![h, q], plain(hf("self_attn.o_proj.weight"))));
        if c.attention_bias {
            plan.push((gg("attn_q.bias"), vec![q], Source::Rope { name: hf("self_attn.q_proj.bias"), heads }));
            plan.push((
                gg("attn_k.bias"),
                vec![kv],
                Source::Rope { name: hf("self_attn.k_proj.bias"), heads: kv_heads },
            ));
            plan.push((gg("attn_v.bias"), vec![kv], plain(hf("self_attn.v_proj.bias"))));
            plan.push((gg("attn_output.bias"), vec![h], plain(hf("self_attn.o_proj.bias"))));
        }
        plan.push((gg("ffn_norm.weight"), vec![h], plain(hf("post_attention_layernorm.weight"))));
        plan.push((gg("ffn_gate.weight"), vec![i, h], plain(hf("mlp.gate_proj.weight"))));
        plan.push((gg("ffn_up.weight"), vec![i, h], plain(hf("mlp.up_proj.weight"))));
        plan.push((gg("ffn_down.weight"), vec![h, i], plain(hf("mlp.down_proj.weight"))));
        if c.mlp_bias {
            plan.push((gg("ffn_gate.bias"), vec![i], plain(hf("mlp.gate_proj.bias"))));
            plan.push((gg("ffn_up.bias"), vec![i], plain(hf("mlp.up_proj.bias"))));
            plan.push((gg("ffn_down.bias"), vec![h], plain(hf("mlp.down_proj.bias"))));
        }
    }
    plan.push(("output_norm.weight".into(), vec![h], plain("model.norm.weight".into())));
    if !c.tie_word_embeddings {
        plan.push(("output.weight".into(), vec![v, h], plain("lm_head.weight".into())));
    }
    Ok(plan)
}

/// Llama 3.1's per-frequency rope divisors, as the converter computes the `rope_freqs` tensor:
/// 1 for wavelengths shorter than `original / high_freq_factor`, `factor` for those longer than
/// `original / low_freq_factor`, and a smooth blend between.
fn llama3_rope_factors(theta: f64, head_dim: usize, factor: f64, low: f64, high: f64, original: f64) -> Vec<f32> {
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    (0..head_dim / 2)
        .map(|k| {
            // The converter computes the frequencies in float32.
            let freq = 1.0 / (theta as f32).powf((2 * k) as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f64::consts::PI / freq as f64;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor as f32
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}
