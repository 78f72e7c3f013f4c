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

impl Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
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
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
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

/// cos and sin of the rotary angles for the positions of one forward, `[batch, seq, head_dim]`.
/// `sin_signed` has its first half negated, so `rotate_half(x) * sin == x.roll(half) * sin_signed`
/// (the same products, one kernel instead of four).
pub struct Rope {
    pub cos: Tensor,
    pub sin_signed: Tensor,
}

/// Keys and values of earlier positions, preallocated to `capacity` so decoding never copies
/// the past: per layer `[batch, kv_heads, capacity, head_dim]`, filled up to `len`.
pub struct KvCache {
    pub keys: Vec<Tensor>,
    pub values: Vec<Tensor>,
    pub len: i64,
    pub capacity: i64,
}

impl KvCache {
    /// An empty cache for `batch` sequences of up to `capacity` positions.
    pub fn new(config: &Config, batch: i64, capacity: i64, kind: Kind, device: Device) -> KvCache {
        let shape = [batch, config.num_key_value_heads as i64, capacity, config.head_dim as i64];
        let make = || (0..config.num_hidden_layers).map(|_| Tensor::zeros(shape, (kind, device))).collect();
        KvCache { keys: make(), values: make(), len: 0, capacity }
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
        Rope { cos: emb.cos().to_kind(kind), sin_signed: sin_signed.to_kind(kind) }
    }

    /// One decoder layer on `x` (`[batch, seq, hidden]`); with a cache, the new keys and values
    /// are written at `cache.len` (the caller advances `len` once all layers ran).
    pub fn layer(&self, i: usize, x: &Tensor, rope: &Rope, mask: &Mask, cache: Option<&mut KvCache>) -> Tensor {
        let layer = &self.layers[i];
        let h = x + self.attention(i, &layer.input_layernorm.forward(x), rope, mask, cache);
        let m = &layer.mlp;
        let y = layer.post_attention_layernorm.forward(&h);
        &h + m.down_proj.forward(&(m.gate_proj.forward(&y).silu() * m.up_proj.forward(&y)))
    }

    fn attention(&self, i: usize, x: &Tensor, rope: &Rope, mask: &Mask, cache: Option<&mut KvCache>) -> Tensor {
        let c = &self.config;
        let a = &self.layers[i].self_attn;
        let (b, t) = (x.size()[0], x.size()[1]);
        let (nh, nkv, hd) = (c.num_attention_heads as i64, c.num_key_value_heads as i64, c.head_dim as i64);
        let q = a.q_proj.forward(x).view([b, t, nh, hd]).transpose(1, 2);
        let k = a.k_proj.forward(x).view([b, t, nkv, hd]).transpose(1, 2);
        let v = a.v_proj.forward(x).view([b, t, nkv, hd]).transpose(1, 2);
        let (cos, sin) = (rope.cos.unsqueeze(1), rope.sin_signed.unsqueeze(1));
        let half = hd / 2;
        let q = &q * &cos + q.roll([half], [-1]) * &sin;
        let k = &k * &cos + k.roll([half], [-1]) * &sin;
        let (k, v) = match cache {
            None => (k, v),
            Some(cache) => {
                let end = cache.len + t;
                cache.keys[i].narrow(2, cache.len, t).copy_(&k);
                cache.values[i].narrow(2, cache.len, t).copy_(&v);
                (cache.keys[i].narrow(2, 0, end), cache.values[i].narrow(2, 0, end))
            }
        };
        let gqa = nkv != nh;
        let out = match mask {
            Mask::Causal => Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, true, None, gqa),
            Mask::All => Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, false, None, gqa),
            Mask::Explicit(m) => Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), 0.0, false, None, gqa),
        };
        a.o_proj.forward(&out.transpose(1, 2).reshape([b, t, nh * hd]))
    }

    /// Final norm (`[batch, seq, hidden]` in, same out).
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x)
    }

    /// Logits of normed hidden states: `[..., hidden]` to `[..., vocab]`.
    pub fn lm_head(&self, h: &Tensor) -> Tensor {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => h.linear::<Tensor>(&self.embed_tokens, None),
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
                },
                post_attention_layernorm: norm(get, &format!("{p}.post_attention_layernorm"), h, eps)?,
                mlp: Mlp {
                    gate_proj: linear(get, &format!("{p}.mlp.gate_proj"), i, h, mb)?,
                    up_proj: linear(get, &format!("{p}.mlp.up_proj"), i, h, mb)?,
                    down_proj: linear(get, &format!("{p}.mlp.down_proj"), h, i, mb)?,
                },
            });
        }
        let norm = norm(get, "model.norm", h, eps)?;
        let lm_head = if c.tie_word_embeddings { None } else { Some(linear(get, "lm_head", v, h, false)?) };
        let rope_inv_freq = inv_freq(c, 0, embed_tokens.device());
        Ok(Llama { config, embed_tokens, layers, norm, lm_head, rope_inv_freq })
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

fn norm(get: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>, name: &str, hidden: i64, eps: f64) -> Result<RmsNorm> {
    Ok(RmsNorm { weight: get(&format!("{name}.weight"), &[hidden])?, eps })
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
