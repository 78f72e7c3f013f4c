//! Delta weights, as Vicuna was first released: `apply` adds a delta checkpoint to its base
//! (target = base + delta) and `make` subtracts one (delta = target - base), tensor by tensor.
//! Follows FastChat's `fastchat/model/apply_delta.py` and `make_delta.py` (fschat 0.2.36, and
//! v0.1.10 for the grown vocabulary) in what comes out, not in how:
//! - the arithmetic is one libtorch add or subtract per element in the inputs' dtype (FastChat
//!   loads both models as fp16 and adds in place; `--dtype fp16` does exactly that), so a delta
//!   made by FastChat applies here to the same bits as FastChat's `apply_delta`;
//! - a grown vocabulary (Vicuna v0 deltas added a `[PAD]` token): where the delta's (or the
//!   target's) `embed_tokens`/`lm_head` has more rows than the base's, the base is padded with
//!   zero rows before the sum, as FastChat v0 resized the base's embeddings and zeroed the new
//!   rows, so the extra rows are the delta's (0 + x, which also turns -0.0 into +0.0 as FastChat);
//! - the result's config, generation config and tokenizer files are the delta's for `apply` (the
//!   target's for `make`), as FastChat saves the delta's tokenizer and config.
//!
//! Unlike FastChat, which loads both models whole (about 30 GB of RAM for 7B), nothing is loaded:
//! the inputs are memory-mapped, each output tensor is computed from the two mapped tensors, the
//! pages read are handed back, and output shards are written as they fill, so the peak is about
//! one output shard plus the largest tensor. The measured peak RSS is reported.
//!
//! Exactness: `apply(make(B, T))` gives T back bit for bit wherever each element of T lies within
//! a factor of two of B's element with the same sign (Sterbenz: the subtraction is then exact),
//! which holds for fine-tuned weights away from zero; elsewhere the delta is rounded to its
//! dtype, as FastChat's is, and the sum may differ from T by an ulp.
use super::config::Config;
use super::weights::{copy_tokenizer, open_model, write_shards, Checkpoint};
use crate::util::atomic;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Which way the delta goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// out = base + delta.
    Apply,
    /// out = target - base.
    Make,
}

/// How the output is written.
#[derive(Debug, Clone, Copy)]
pub struct DeltaOptions {
    /// Compute and save in this kind; `None` keeps the inputs' kind (which must then agree). FastChat
    /// always works in fp16.
    pub kind: Option<Kind>,
    /// Largest safetensors shard of the output, in bytes: the peak memory is about one shard.
    pub max_shard_bytes: usize,
}

/// What a delta pass did, for the command's summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeltaSummary {
    /// "apply" or "make".
    pub op: &'static str,
    /// Output directory.
    pub output: String,
    /// Tensors written.
    pub tensors: usize,
    /// Embedding and LM head tensors whose vocabulary grew: (name, base rows, output rows).
    pub grown: Vec<(String, i64, i64)>,
    /// Bytes of weights written.
    pub bytes: u64,
    /// The dtype computed and saved in (`float16`, `bfloat16`, `float32`).
    pub dtype: String,
    /// Peak resident memory of the process at the end, in bytes.
    pub peak_rss_bytes: u64,
    /// Resident memory just before the first tensor was read (libtorch and the maps' headers):
    /// the part of the peak that is not the streamed weights.
    pub start_rss_bytes: u64,
}

impl std::fmt::Display for DeltaSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (what, verb) = match self.op {
            "apply" => ("target model", "applied the delta"),
            _ => ("delta", "made the delta"),
        };
        write!(
            f,
            "{verb}: {} tensors, {:.1} MB of {} weights, {what} in {}",
            self.tensors,
            self.bytes as f64 / 1e6,
            self.dtype,
            self.output
        )?;
        for (name, from, to) in &self.grown {
            write!(f, "\n  {name}: vocabulary grown from {from} to {to} rows")?;
        }
        write!(
            f,
            "\npeak memory (RSS): {:.1} MB, of which {:.1} MB before the first tensor was read",
            self.peak_rss_bytes as f64 / 1e6,
            self.start_rss_bytes as f64 / 1e6
        )
    }
}

/// `vicuna model delta apply`: writes `base + delta` to `out` (weights, the delta's config,
/// generation config and tokenizer), streaming tensor by tensor.
pub fn apply(base: &Path, delta: &Path, out: &Path, options: &DeltaOptions) -> Result<DeltaSummary> {
    combine(Op::Apply, base, delta, out, options)
}

/// `vicuna model delta make`: writes `target - base` to `out` (weights, the target's config,
/// generation config and tokenizer), the delta that [`apply`] turns back into the target.
pub fn make(base: &Path, target: &Path, out: &Path, options: &DeltaOptions) -> Result<DeltaSummary> {
    combine(Op::Make, base, target, out, options)
}

/// Config fields that must agree between the base and the other model: weights of different
/// architectures add up to nothing meaningful even where the shapes happen to match.
fn check_architecture(base: &Config, other: &Config, base_dir: &Path, other_dir: &Path) -> Result<()> {
    let fields = [
        ("hidden_size", base.hidden_size, other.hidden_size),
        ("intermediate_size", base.intermediate_size, other.intermediate_size),
        ("num_hidden_layers", base.num_hidden_layers, other.num_hidden_layers),
        ("num_attention_heads", base.num_attention_heads, other.num_attention_heads),
        ("num_key_value_heads", base.num_key_value_heads, other.num_key_value_heads),
        ("head_dim", base.head_dim, other.head_dim),
    ];
    for (key, b, o) in fields {
        if b != o {
            bail!(
                "{}/config.json has {key} {o} but the base {}/config.json has {b}: the delta belongs to another model; \
                 pass the base it was made from",
                other_dir.display(),
                base_dir.display()
            );
        }
    }
    if other.vocab_size < base.vocab_size {
        bail!(
            "{}/config.json has vocab_size {} but the base {}/config.json has {}: a delta may grow the vocabulary, never shrink it",
            other_dir.display(),
            other.vocab_size,
            base_dir.display(),
            base.vocab_size
        );
    }
    Ok(())
}

/// The tensors whose first dimension is the vocabulary, which a delta may grow.
fn is_vocabulary(name: &str) -> bool {
    name == "model.embed_tokens.weight" || name == "lm_head.weight"
}

fn dtype_name(kind: Kind) -> Result<&'static str> {
    Ok(match kind {
        Kind::Float => "float32",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        other => bail!("cannot write weights of kind {other:?}: pass --dtype fp32, bf16 or fp16"),
    })
}

/// One output tensor: its name, the shapes in base and other, whether its vocabulary grew.
struct Item {
    name: String,
    base_shape: Vec<i64>,
    shape: Vec<i64>,
}

/// The checked plan: every tensor of `other` in file order, matched with the base's, and the kind
/// to compute in. Every refusal names the tensor.
fn plan(
    base: &Checkpoint,
    other: &Checkpoint,
    base_dir: &Path,
    other_dir: &Path,
    wanted: Option<Kind>,
) -> Result<(Vec<Item>, Kind)> {
    for name in base.names() {
        if other.shape_kind(name)?.is_none() {
            bail!(
                "tensor {name} of the base {} is missing from {}: the two are not the same architecture",
                base_dir.display(),
                other_dir.display()
            );
        }
    }
    let mut items = Vec::new();
    let mut kind: Option<(Kind, String)> = wanted.map(|k| (k, "--dtype".to_string()));
    for name in other.names_in_file_order() {
        let (shape, other_kind) = other.shape_kind(name)?.context("listed tensor")?;
        let Some((base_shape, base_kind)) = base.shape_kind(name)? else {
            bail!(
                "tensor {name} of {} is missing from the base {}: the two are not the same architecture",
                other_dir.display(),
                base_dir.display()
            );
        };
        let grown = is_vocabulary(name)
            && shape.len() == 2
            && base_shape.len() == 2
            && shape[1] == base_shape[1]
            && shape[0] > base_shape[0];
        if shape != base_shape && !grown {
            bail!(
                "tensor {name} has shape {shape:?} in {} but {base_shape:?} in the base {}: only the vocabulary rows of \
                 the embedding and LM head may grow",
                other_dir.display(),
                base_dir.display()
            );
        }
        if wanted.is_none() {
            for (k, dir) in [(base_kind, base_dir), (other_kind, other_dir)] {
                match &kind {
                    None => kind = Some((k, format!("tensor {name} of {}", dir.display()))),
                    Some((first, from)) if *first != k => bail!(
                        "tensor {name} of {} is {} but {from} is {}: pass --dtype to compute and save in one \
                         (FastChat uses fp16)",
                        dir.display(),
                        dtype_name(k).unwrap_or("another kind"),
                        dtype_name(*first).unwrap_or("another kind")
                    ),
                    Some(_) => {}
                }
            }
        }
        items.push(Item { name: name.to_string(), base_shape, shape });
    }
    let (kind, _) = kind.with_context(|| format!("{}: the checkpoint has no tensors", other_dir.display()))?;
    dtype_name(kind)?;
    Ok((items, kind))
}

/// Reads one whole tensor of `checkpoint` as `kind` (a copy of its own), then hands its pages back.
fn read(checkpoint: &Checkpoint, name: &str, shape: &[i64], kind: Kind) -> Result<Tensor> {
    let numel: i64 = shape.iter().product();
    let t = checkpoint.read_flat(name, 0, numel, kind, Device::Cpu)?;
    checkpoint.release(name);
    t.f_view(shape).with_context(|| format!("tensor {name}: cannot view as {shape:?}"))
}

/// One output tensor: `base + other` or `other - base`, the base padded with zero rows first
/// when the vocabulary grew. The first operand is copied out of its map and the second added to
/// (or subtracted from) it in place, read straight from its map, as FastChat's
/// `param.data += delta`: the same bits as an out-of-place sum, and at the peak only the copy and
/// the other tensor's file pages are resident (twice the tensor, never three or four times).
fn compute(op: Op, base: &Checkpoint, other: &Checkpoint, item: &Item, kind: Kind) -> Result<Tensor> {
    let name = &item.name;
    let failed = || format!("tensor {name}: cannot combine the base and delta");
    match op {
        Op::Apply => {
            let mut b = read(base, name, &item.base_shape, kind)?;
            if item.base_shape != item.shape {
                // FastChat v0 resized the base's embeddings and zeroed the new rows: 0 + delta.
                let mut extra = item.shape.clone();
                extra[0] -= item.base_shape[0];
                let zeros = Tensor::f_zeros(&extra, (kind, Device::Cpu))?;
                b = Tensor::f_cat(&[b, zeros], 0)
                    .with_context(|| format!("tensor {name}: cannot pad the base rows"))?;
            }
            other.with_tensor(name, kind, |o| b.f_add_(o).map(|_| ()).with_context(failed))?;
            Ok(b)
        }
        Op::Make => {
            let o = read(other, name, &item.shape, kind)?;
            // Rows past the base's are the target's own (x - 0 is x, bit for bit, -0.0 included).
            let mut head = o.f_narrow(0, 0, item.base_shape[0]).with_context(failed)?;
            base.with_tensor(name, kind, |b| head.f_sub_(b).map(|_| ()).with_context(failed))?;
            Ok(o)
        }
    }
}

/// The other model's config.json, with its dtype key saying what was written.
fn output_config(other_dir: &Path, kind: Kind) -> Result<Vec<u8>> {
    let path = other_dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let map = value.as_object_mut().with_context(|| format!("{}: not a JSON object", path.display()))?;
    let name = dtype_name(kind)?;
    let mut set = false;
    for key in ["torch_dtype", "dtype"] {
        if map.contains_key(key) {
            map.insert(key.to_string(), name.into());
            set = true;
        }
    }
    if !set {
        map.insert("torch_dtype".to_string(), name.into());
    }
    Ok(serde_json::to_vec_pretty(&value)?)
}

fn combine(op: Op, base_dir: &Path, other_dir: &Path, out: &Path, options: &DeltaOptions) -> Result<DeltaSummary> {
    let other_flag = if op == Op::Apply { "--delta" } else { "--target" };
    atomic::ensure_distinct(&[base_dir, other_dir], &[("--output", out)])?;
    if options.max_shard_bytes == 0 {
        bail!("--max-shard-size must be more than 0 bytes");
    }
    let base_config = Config::load(&base_dir.join("config.json"))
        .with_context(|| format!("--base {}: not a model directory", base_dir.display()))?;
    let other_config = Config::load(&other_dir.join("config.json"))
        .with_context(|| format!("{other_flag} {}: not a model directory", other_dir.display()))?;
    check_architecture(&base_config, &other_config, base_dir, other_dir)?;
    // Each input's tensors must be the ones its own config describes (names, shapes, nothing
    // extra): then the output, with the other model's shapes, matches the config it gets.
    let (_, base) =
        open_model(base_dir, Kind::Float, Device::Cpu).with_context(|| format!("--base {}", base_dir.display()))?;
    let (_, other) = open_model(other_dir, Kind::Float, Device::Cpu)
        .with_context(|| format!("{other_flag} {}", other_dir.display()))?;
    let (items, kind) = plan(&base, &other, base_dir, other_dir, options.kind)?;
    let shapes: Vec<(String, Vec<i64>)> = items.iter().map(|i| (i.name.clone(), i.shape.clone())).collect();
    let bytes: u64 =
        items.iter().map(|i| i.shape.iter().product::<i64>() as u64).sum::<u64>() * kind.elt_size_in_bytes() as u64;
    let grown = items
        .iter()
        .filter(|i| i.shape != i.base_shape)
        .map(|i| (i.name.clone(), i.base_shape[0], i.shape[0]))
        .collect();
    let bar = crate::util::progress::progress_bar(
        items.len() as u64,
        if op == Op::Apply { "apply" } else { "make" },
        "tensors",
    );
    let start_rss_bytes = crate::util::rss_bytes();
    atomic::write_dir(out, |tmp| {
        write_shards(tmp, kind, options.max_shard_bytes, &shapes, &mut |i| {
            let t = compute(op, &base, &other, &items[i], kind);
            bar.inc(1);
            t
        })?;
        atomic::write_bytes(&tmp.join("config.json"), &output_config(other_dir, kind)?)?;
        let generation = other_dir.join("generation_config.json");
        if generation.exists() {
            let bytes = std::fs::read(&generation).with_context(|| format!("cannot read {}", generation.display()))?;
            atomic::write_bytes(&tmp.join("generation_config.json"), &bytes)?;
        }
        copy_tokenizer(other_dir, tmp)
    })?;
    bar.finish_and_clear();
    Ok(DeltaSummary {
        op: if op == Op::Apply { "apply" } else { "make" },
        output: out.display().to_string(),
        tensors: items.len(),
        grown,
        bytes,
        dtype: dtype_name(kind)?.to_string(),
        peak_rss_bytes: crate::util::peak_rss_bytes(),
        start_rss_bytes,
    })
}
