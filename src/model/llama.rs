//! The LLaMA decoder (Touvron et al. 2023; Llama 2 and 3 with grouped-query attention) on
//! libtorch, after `transformers`' `LlamaForCausalLM` and candle's `llama.rs`: every parameter is
//! a field named like its Hugging Face tensor, so loading and saving are identity maps. Each
//! decoder layer is callable on its own, for the trainer's explicit layer loop and gradient
//! checkpointing. Attention is `scaled_dot_product_attention` (flash kernels on CUDA, the fused CPU
//! kernel here); a T x T mask is only built when padding needs one.
use super::config::{Config, RopeScaling};
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// A projection `y = x W^T (+ b)`; `weight` is `[out, in]` as in PyTorch.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

/// Which library multiplies activations by projection weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matmul {
    /// ATen's `linear` (MKL on CPU, cuBLAS on CUDA), differentiable: training and CUDA.
    Aten,
    /// oneDNN's inner product, inference on CPU in fp32 only (not differentiable). On this
    /// machine's AMD cores MKL takes its generic code path: its batch-1 product reads weights at
    /// half the memory rate and its small-batch products repack the whole weight on every call,
    /// while oneDNN reads the checkpoint's row-major weights in place at full speed (measured:
    /// 1.6x at batch 1, 2x at batch 16, the same results within 1e-6).
    OneDnn,
}

impl Linear {
    fn forward(&self, x: &Tensor, matmul: Matmul) -> Tensor {
        project(x, &self.weight, self.bias.as_ref(), matmul)
    }
}

/// `x W^T (+ b)` by the chosen library.
fn project(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, matmul: Matmul) -> Tensor {
    match matmul {
        Matmul::Aten => x.linear(weight, bias),
        Matmul::OneDnn => x.contiguous().to_mkldnn().mkldnn_linear(weight, bias).to_dense(None, false),
    }
}

/// Root-mean-square norm, computed in fp32 and cast back, as `LlamaRMSNorm` does.
pub struct RmsNorm {
    /// `[hidden]`
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        if kind == Kind::Float {
            // One fused kernel; in fp32 it is the same arithmetic as the explicit form below.
            let hidden = self.weight.size()[0];
            return x.rms_norm([hidden], Some(&self.weight), self.eps);
        }
        let xf = x.to_kind(Kind::Float);
        let variance = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = (xf * (variance + self.eps).rsqrt()).to_kind(kind);
        &self.weight * normed
    }
}

/// Self-attention with rotary positions and grouped-query heads.
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// q, k and v stacked (`[q + 2 kv, hidden]`) by `Llama::fuse_projections`, so inference
    /// runs one product instead of three; the three weights above are then views into it.
    pub qkv_proj: Option<Linear>,
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    /// gate and up stacked (`[2 intermediate, hidden]`) by `Llama::fuse_projections`; the two
    /// weights above are then views into it.
    pub gate_up_proj: Option<Linear>,
}

/// One decoder layer: pre-norm attention and pre-norm MLP, each with a residual.
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// The model's weights. Shapes: embed_tokens `[vocab, hidden]`; q_proj `[heads*head_dim, hidden]`;
/// k_proj, v_proj `[kv_heads*head_dim, hidden]`; o_proj `[hidden, heads*head_dim]`; gate, up
/// `[intermediate, hidden]`; down `[hidden, intermediate]`; lm_head `[vocab, hidden]` (absent
/// when tied to embed_tokens).
pub struct Llama {
    pub config: Config,
    pub embed_tokens: Tensor,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    pub lm_head: Option<Linear>,
    /// Rotary inverse frequencies `[head_dim / 2]`, fp32, on the model's device; recomputed per
    /// forward only for dynamic NTK scaling past `max_position_embeddings`.
    pub rope_inv_freq: Tensor,
    /// `Aten` unless `prepare_for_inference` picked a faster inference-only path.
    pub matmul: Matmul,
}

/// Which positions a query may attend to.
pub enum Mask {
    /// Causal within one unpadded sequence per row (no mask tensor: SDPA's `is_causal`).
    Causal,
    /// Every cached and new key (one new token per row, no padding).
    All,
    /// An explicit boolean mask `[batch, 1, queries, keys]`, true where attention is allowed.
    Explicit(Tensor),
}

/// cos and sin of the rotary angles for the positions of one forward, `[batch, seq, 1,
/// head_dim]` (broadcast over heads). `sin_signed` has its first half negated, so
/// `rotate_half(x) * sin == x.roll(half) * sin_signed` (the same products, one kernel instead of four).
pub struct Rope {
    pub cos: Tensor,
    pub sin_signed: Tensor,
}

impl Rope {
    /// Rotates heads `[batch, seq, heads, head_dim]` to their positions, as transformers'
    /// `apply_rotary_pos_emb` does.
    pub fn rotate(&self, x: &Tensor) -> Tensor {
        let half = x.size()[3] / 2;
        x * &self.cos + x.roll([half], [-1]) * &self.sin_signed
    }
}

/// Keys and values of earlier positions, preallocated to `capacity` so decoding never copies
/// the past: per layer `[batch, kv_heads, capacity, head_dim]`, filled up to `len` (keys
/// `[batch, kv_heads, head_dim, capacity]` when `keys_transposed`).
pub struct KvCache {
    pub keys: Vec<Tensor>,
    pub values: Vec<Tensor>,
    pub len: i64,
    pub capacity: i64,
    /// Keys stored position-last, as the model's CPU inference kernels decode: the scores of a
    /// new query are then an axpy-style product over the cache, which MKL streams at about twice
    /// the rate of the dot-product form that the usual layout takes (measured on the 8x512 model,
    /// batch 16: decoding 10-15% faster).
    pub keys_transposed: bool,
}

impl KvCache {
    /// An empty cache for `batch` sequences of up to `capacity` positions, laid out for
    /// `model`'s kernels.
    pub fn new(model: &Llama, batch: i64, capacity: i64) -> KvCache {
        let c = &model.config;
        let (kind, device) = (model.embed_tokens.kind(), model.embed_tokens.device());
        let (nkv, hd) = (c.num_key_value_heads as i64, c.head_dim as i64);
        let keys_transposed = model.matmul == Matmul::OneDnn;
        let key_shape = if keys_transposed { [batch, nkv, hd, capacity] } else { [batch, nkv, capacity, hd] };
        let make = |shape| (0..c.num_hidden_layers).map(|_| Tensor::zeros(shape, (kind, device))).collect();
        KvCache { keys: make(key_shape), values: make([batch, nkv, capacity, hd]), len: 0, capacity, keys_transposed }
    }

    /// Stores layer `layer`'s keys and values (`[batch, kv_heads, t, head_dim]`) of positions
    /// `len..len + t`; returns all keys up to there, as `[batch, kv_heads, head_dim, end]` when
    /// transposed, and all values `[batch, kv_heads, end, head_dim]`.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let (start, t) = (self.len, k.size()[2]);
        let end = start + t;
        let keys = &self.keys[layer];
        let keys = if self.keys_transposed {
            keys.narrow(3, start, t).copy_(&k.transpose(2, 3));
            keys.narrow(3, 0, end)
        } else {
            keys.narrow(2, start, t).copy_(k);
            keys.narrow(2, 0, end)
        };
        self.values[layer].narrow(2, start, t).copy_(v);
        (keys, self.values[layer].narrow(2, 0, end))
    }
}

impl Llama {
    /// Token embeddings: `[batch, seq]` ids to `[batch, seq, hidden]`.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    /// Rotary cos and sin for `positions` (`[batch, seq]`, int64), in fp32 as transformers
    /// computes them, cast to `kind`.
    pub fn rope(&self, positions: &Tensor, kind: Kind) -> Rope {
        let dynamic;
        let inv_freq = match self.config.rope_scaling {
            RopeScaling::Dynamic { .. } => {
                dynamic = inv_freq(&self.config, positions.max().int64_value(&[]) + 1, positions.device());
                &dynamic
            }
            _ => &self.rope_inv_freq,
        };
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * inv_freq.view([1, 1, -1]);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        let sin = freqs.sin();
        let sin_signed = Tensor::cat(&[&(-&sin), &sin], -1);
        Rope { cos: emb.cos().to_kind(kind).unsqueeze(2), sin_signed: sin_signed.to_kind(kind).unsqueeze(2) }
    }

    /// One decoder layer on `x` (`[batch, seq, hidden]`); with a cache, the new keys and values
    /// are written at `cache.len` (the caller advances `len` once all layers ran).
    pub fn layer(&self, i: usize, x: &Tensor, rope: &Rope, mask: &Mask, cache: Option<&mut KvCache>) -> Tensor {
        let layer = &self.layers[i];
        let h = x + self.attention(i, &layer.input_layernorm.forward(x), rope, mask, cache);
        let (m, mm) = (&layer.mlp, self.matmul);
        let y = layer.post_attention_layernorm.forward(&h);
        let (gate, up) = match &m.gate_up_proj {
            Some(fused) => {
                let both = fused.forward(&y, mm);
                let i = self.config.intermediate_size as i64;
                (both.narrow(-1, 0, i), both.narrow(-1, i, i))
            }
            None => (m.gate_proj.forward(&y, mm), m.up_proj.forward(&y, mm)),
        };
        &h + m.down_proj.forward(&(gate.silu() * up), mm)
    }

    fn attention(&self, i: usize, x: &Tensor, rope: &Rope, mask: &Mask, cache: Option<&mut KvCache>) -> Tensor {
        let c = &self.config;
        let a = &self.layers[i].self_attn;
        let (b, t) = (x.size()[0], x.size()[1]);
        let (nh, nkv, hd) = (c.num_attention_heads as i64, c.num_key_value_heads as i64, c.head_dim as i64);
        let mm = self.matmul;
        // Heads are `[batch, seq, heads, head_dim]` until rotated, then `[batch, heads, seq, head_dim]`.
        let (q, k, v) = match &a.qkv_proj {
            Some(fused) => {
                let qkv = fused.forward(x, mm);
                // q and k heads are adjacent: one rotation for both.
                let qk = rope.rotate(&qkv.narrow(-1, 0, (nh + nkv) * hd).view([b, t, nh + nkv, hd]));
                (qk.narrow(2, 0, nh), qk.narrow(2, nh, nkv), qkv.narrow(-1, (nh + nkv) * hd, nkv * hd))
            }
            None => (
                rope.rotate(&a.q_proj.forward(x, mm).view([b, t, nh, hd])),
                rope.rotate(&a.k_proj.forward(x, mm).view([b, t, nkv, hd])),
                a.v_proj.forward(x, mm),
            ),
        };
        let (q, k, v) = (q.transpose(1, 2), k.transpose(1, 2), v.view([b, t, nkv, hd]).transpose(1, 2));
        let out = match cache {
            None => attend(&q, &k, &v, mask),
            Some(cache) => {
                let (keys, values) = cache.append(i, &k, &v);
                match (cache.keys_transposed, t) {
                    (true, 1) => decode_attention(&q, &keys, &values, mask),
                    // Prefill with a transposed cache: SDPA wants keys position-major.
                    (true, _) => attend(&q, &keys.transpose(2, 3).contiguous(), &values, mask),
                    (false, _) => attend(&q, &keys, &values, mask),
                }
            }
        };
        a.o_proj.forward(&out.transpose(1, 2).reshape([b, t, nh * hd]), self.matmul)
    }

    /// Final norm (`[batch, seq, hidden]` in, same out).
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x)
    }

    /// Logits of normed hidden states: `[..., hidden]` to `[..., vocab]`.
    pub fn lm_head(&self, h: &Tensor) -> Tensor {
        match &self.lm_head {
            Some(head) => head.forward(h, self.matmul),
            None => project(h, &self.embed_tokens, None, self.matmul),
        }
    }

    /// Hidden states after the final norm for `ids` at `positions`, every layer in order.
    pub fn hidden(&self, ids: &Tensor, positions: &Tensor, mask: &Mask, mut cache: Option<&mut KvCache>) -> Tensor {
        let mut x = self.embed(ids);
        let rope = self.rope(positions, x.kind());
        for i in 0..self.layers.len() {
            x = self.layer(i, &x, &rope, mask, cache.as_deref_mut());
        }
        if let Some(cache) = cache {
            cache.len += ids.size()[1];
        }
        self.final_norm(&x)
    }

    /// Logits for unpadded sequences `ids` (`[batch, seq]`), positions 0.., causal attention.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let positions = Tensor::arange(t, (Kind::Int64, ids.device())).unsqueeze(0).expand([b, t], false);
        self.lm_head(&self.hidden(ids, &positions, &Mask::Causal, None))
    }

    /// The parameters under their Hugging Face names, in checkpoint order.
    pub fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        fn linear<'a>(out: &mut Vec<(String, &'a Tensor)>, name: String, l: &'a Linear) {
            out.push((format!("{name}.weight"), &l.weight));
            if let Some(b) = &l.bias {
                out.push((format!("{name}.bias"), b));
            }
        }
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed_tokens)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), &l.input_layernorm.weight));
            for (n, lin) in [
                ("q_proj", &l.self_attn.q_proj),
                ("k_proj", &l.self_attn.k_proj),
                ("v_proj", &l.self_attn.v_proj),
                ("o_proj", &l.self_attn.o_proj),
            ] {
                linear(&mut out, format!("{p}.self_attn.{n}"), lin);
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), &l.post_attention_layernorm.weight));
            for (n, lin) in
                [("gate_proj", &l.mlp.gate_proj), ("up_proj", &l.mlp.up_proj), ("down_proj", &l.mlp.down_proj)]
            {
                linear(&mut out, format!("{p}.mlp.{n}"), lin);
            }
        }
        out.push(("model.norm.weight".to_string(), &self.norm.weight));
        if let Some(head) = &self.lm_head {
            linear(&mut out, "lm_head".to_string(), head);
        }
        out
    }

    /// Builds the model from `get`, which returns each named tensor with its expected shape (the
    /// loader checks shapes and names the tensor that is wrong or missing).
    pub fn build(config: Config, get: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>) -> Result<Llama> {
        let c = &config;
        let (h, i, v) = (c.hidden_size as i64, c.intermediate_size as i64, c.vocab_size as i64);
        let (q, kv) = ((c.num_attention_heads * c.head_dim) as i64, (c.num_key_value_heads * c.head_dim) as i64);
        let (ab, mb, eps) = (c.attention_bias, c.mlp_bias, c.rms_norm_eps);
        let embed_tokens = get("model.embed_tokens.weight", &[v, h])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            layers.push(DecoderLayer {
                input_layernorm: norm(get, &format!("{p}.input_layernorm"), h, eps)?,
                self_attn: Attention {
                    q_proj: linear(get, &format!("{p}.self_attn.q_proj"), q, h, ab)?,
                    k_proj: linear(get, &format!("{p}.self_attn.k_proj"), kv, h, ab)?,
                    v_proj: linear(get, &format!("{p}.self_attn.v_proj"), kv, h, ab)?,
                    o_proj: linear(get, &format!("{p}.self_attn.o_proj"), h, q, ab)?,
                    qkv_proj: None,
                },
                post_attention_layernorm: norm(get, &format!("{p}.post_attention_layernorm"), h, eps)?,
                mlp: Mlp {
                    gate_proj: linear(get, &format!("{p}.mlp.gate_proj"), i, h, mb)?,
                    up_proj: linear(get, &format!("{p}.mlp.up_proj"), i, h, mb)?,
                    down_proj: linear(get, &format!("{p}.mlp.down_proj"), h, i, mb)?,
                    gate_up_proj: None,
                },
            });
        }
        let norm = norm(get, "model.norm", h, eps)?;
        let lm_head = if c.tie_word_embeddings { None } else { Some(linear(get, "lm_head", v, h, false)?) };
        let rope_inv_freq = inv_freq(c, 0, embed_tokens.device());
        Ok(Llama { config, embed_tokens, layers, norm, lm_head, rope_inv_freq, matmul: Matmul::Aten })
    }

    /// Readies the model for generation: stacked projections (`fuse_projections`) and, on CPU in
    /// fp32, oneDNN products (`Matmul::OneDnn`). Logits stay within rounding of the plain model
    /// (the parity tests check both against transformers). The model can no longer be trained.
    pub fn prepare_for_inference(&mut self) {
        self.fuse_projections();
        let cpu_fp32 = self.embed_tokens.device() == Device::Cpu && self.embed_tokens.kind() == Kind::Float;
        if cpu_fp32 {
            self.matmul = Matmul::OneDnn;
        }
    }

    /// Stacks q/k/v and gate/up weights into one matrix each, for inference: a decoding step
    /// then runs three fewer products (and their bookkeeping) per layer. The separate weights become
    /// views of the stacked ones (still named and shaped as in the checkpoint), so memory holds
    /// them once. Not for training: the trainer updates the separate weights in place.
    fn fuse_projections(&mut self) {
        for layer in &mut self.layers {
            let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
            a.qkv_proj = Some(stack(&mut [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj]));
            m.gate_up_proj = Some(stack(&mut [&mut m.gate_proj, &mut m.up_proj]));
        }
    }

    /// Random weights as transformers initialises them: normal(0, 0.02) for projections and
    /// embeddings, ones for norms. Deterministic for a given `seed`.
    pub fn init(config: Config, seed: i64, kind: Kind, device: Device) -> Result<Llama> {
        tch::manual_seed(seed);
        Llama::build(config, &mut |name, shape| {
            Ok(if name.ends_with("norm.weight") || name.ends_with("layernorm.weight") {
                Tensor::ones(shape, (kind, device))
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape, (kind, device))
            } else {
                (Tensor::randn(shape, (Kind::Float, device)) * 0.02).to_kind(kind)
            })
        })
    }
}

fn linear(
    get: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>,
    name: &str,
    out: i64,
    inp: i64,
    bias: bool,
) -> Result<Linear> {
    let weight = get(&format!("{name}.weight"), &[out, inp])?;
    let bias = if bias { Some(get(&format!("{name}.bias"), &[out])?) } else { None };
    Ok(Linear { weight, bias })
}

/// One projection whose output rows are those of `parts` in order; each part is re-pointed at its
/// rows of the result. Biases are stacked when every part has one (Llama configs give all or none).
fn stack(parts: &mut [&mut Linear]) -> Linear {
    let weight = Tensor::cat(&parts.iter().map(|l| &l.weight).collect::<Vec<_>>(), 0);
    let biases: Option<Vec<&Tensor>> = parts.iter().map(|l| l.bias.as_ref()).collect();
    let bias = biases.map(|b| Tensor::cat(&b, 0));
    let mut start = 0;
    for part in parts.iter_mut() {
        let rows = part.weight.size()[0];
        part.weight = weight.narrow(0, start, rows);
        part.bias = bias.as_ref().map(|b| b.narrow(0, start, rows));
        start += rows;
    }
    Linear { weight, bias }
}

fn norm(get: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>, name: &str, hidden: i64, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm { weight: get(&format!("{name}.weight"), &[hidden])?, eps })
}

/// `scaled_dot_product_attention` of `q` `[batch, heads, seq, head_dim]` against `k`, `v`
/// `[batch, kv_heads, len, head_dim]` under `mask` (grouped-query when the head counts differ).
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Mask) -> Tensor {
    let gqa = k.size()[1] != q.size()[1];
    match mask {
        Mask::Causal => Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, true, None, gqa),
        Mask::All => Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, false, None, gqa),
        Mask::Explicit(m) => Tensor::scaled_dot_product_attention(q, k, v, Some(m), 0.0, false, None, gqa),
    }
}

/// Attention of one new query per row (`q` `[batch, heads, 1, head_dim]`) against cached keys
/// stored position-last (`[batch, kv_heads, head_dim, len]`) and values (`[batch, kv_heads, len,
/// head_dim]`): `softmax(q K / sqrt(d)) V` with masked keys at -inf, as
/// `scaled_dot_product_attention` computes it; query heads are grouped onto their kv head by a
/// reshape, so no key is copied per head.
fn decode_attention(q: &Tensor, keys_t: &Tensor, values: &Tensor, mask: &Mask) -> Tensor {
    let (b, nh, hd) = (q.size()[0], q.size()[1], q.size()[3]);
    let nkv = keys_t.size()[1];
    let q = q.reshape([b, nkv, nh / nkv, hd]);
    let scores = q.matmul(keys_t) * (1.0 / (hd as f64).sqrt());
    let scores = match mask {
        Mask::Explicit(allowed) => scores.masked_fill(&allowed.logical_not(), f64::NEG_INFINITY),
        Mask::All | Mask::Causal => scores,
    };
    // Softmax in fp32 whatever the format (as transformers' eager attention), back for the product.
    scores.softmax(-1, Kind::Float).to_kind(values.kind()).matmul(values).reshape([b, nh, 1, hd])
}

/// Rotary inverse frequencies `[head_dim / 2]` in fp32, with the configured scaling, following
/// transformers' `ROPE_INIT_FUNCTIONS` (default, linear, dynamic NTK, llama3).
pub fn inv_freq(c: &Config, seq_len: i64, device: Device) -> Tensor {
    let dim = c.head_dim as i64;
    let base = match c.rope_scaling {
        RopeScaling::Dynamic { factor } if seq_len > c.max_position_embeddings as i64 => {
            let max = c.max_position_embeddings as f64;
            c.rope_theta * ((factor * seq_len as f64 / max) - (factor - 1.0)).powf(dim as f64 / (dim as f64 - 2.0))
        }
        _ => c.rope_theta,
    };
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / dim as f64;
    let inv = Tensor::pow_scalar(base, &exponents).reciprocal();
    match c.rope_scaling {
        RopeScaling::Linear { factor } => inv / factor,
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            let wavelen = (&inv).reciprocal() * (2.0 * std::f64::consts::PI);
            let scaled = (&inv / factor).where_self(&wavelen.gt(low_wavelen), &inv);
            let smooth = ((&wavelen).reciprocal() * old - low_freq_factor) / (high_freq_factor - low_freq_factor);
            let smoothed = (-&smooth + 1.0) * (&scaled / factor) + &smooth * &scaled;
            let medium = wavelen.ge(high_wavelen).logical_and(&wavelen.le(low_wavelen));
            smoothed.where_self(&medium, &scaled)
        }
        _ => inv,
    }
}
