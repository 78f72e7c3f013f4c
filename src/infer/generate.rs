//! Text generation with a KV cache: prompts are prefilled in one forward (left-padded when their
//! lengths differ, with per-row positions and a padding mask, as `transformers` does), then one
//! token per step for the whole batch. Sampling follows `transformers`' logits processors in
//! their order: repetition penalty, temperature, top-k, top-p; temperature 0 is greedy (argmax,
//! first maximum on ties). Rows stop on an EOS id, a stop string, when their caller says so (a
//! client that went away), or at the end of the model's context: a prompt and its answer never
//! exceed `max_position_embeddings`, and the KV cache holds only what can be generated.
use crate::model::llama::{KvCache, Llama, Mask};
use crate::util::rng::SplitMix64;
use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Divide (or, for negative logits, multiply) the logits of tokens already present (1 = off).
    pub repetition_penalty: f64,
    /// New tokens at most; generation also stops at the end of the model's context.
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 0.0, top_p: 1.0, top_k: 0, repetition_penalty: 1.0, max_new_tokens: 256, seed: 0 }
    }
}

/// A sampling setting outside its range: the `Sampling` field and why, so that each caller can
/// name it in its own terms (`--top-p` on the command line, `top_p` in an HTTP request).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingError {
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for SamplingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for SamplingError {}

impl Sampling {
    /// Checks every setting against its range, the one OpenAI's API and vLLM use: temperature a
    /// number from 0 to 2, top_p above 0 and at most 1, repetition_penalty a positive number,
    /// max_new_tokens at least 1 (top_k, unsigned, is always valid). Outside them sampling
    /// misbehaves silently (a NaN temperature makes every probability NaN), so the CLI and the
    /// server refuse such settings up front, and `generate` refuses them for every other caller.
    pub fn check(&self) -> std::result::Result<(), SamplingError> {
        let bad = |field, reason: String| Err(SamplingError { field, reason });
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return bad("temperature", format!("must be a number from 0 to 2 (0 is greedy), got {}", self.temperature));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("must be above 0 and at most 1 (1 is off), got {}", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(
                "repetition_penalty",
                format!("must be a positive number (1 is off), got {}", self.repetition_penalty),
            );
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "must be at least 1, got 0".to_string());
        }
        Ok(())
    }
}

/// New tokens that fit after a prompt of `prompt_len` tokens in a context of `context`
/// positions (a prompt and its answer together never exceed it); 0 when the prompt fills it.
pub fn room_left(context: usize, prompt_len: usize) -> usize {
    context.saturating_sub(prompt_len)
}

/// When a row is finished.
#[derive(Debug, Clone, Default)]
pub struct Stops {
    pub eos_ids: Vec<u32>,
    /// Stop strings checked on the decoded text of the new tokens.
    pub strings: Vec<String>,
}

/// Generates continuations of `prompts` (token ids). `decode` turns new ids into text (for stop
/// strings); `on_token(row, id)` sees every new token as it is chosen (for streaming) and returns
/// whether that row goes on (false ends it after this token: its client left, or it reached a
/// limit of its own). Each row also ends after `sampling.max_new_tokens` tokens or at the end of
/// the model's context, whichever comes first. Returns the new ids of each row, without the EOS
/// or stop string that ended it. Settings out of range, ids outside the model's vocabulary and
/// prompts that leave no room for an answer are errors, never panics.
pub fn generate(
    model: &Llama,
    prompts: &[Vec<u32>],
    sampling: &Sampling,
    stops: &Stops,
    decode: &dyn Fn(&[u32]) -> Result<String>,
    on_token: &mut dyn FnMut(usize, u32) -> bool,
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        bail!("every prompt needs at least one token");
    }
    sampling.check().map_err(|e| anyhow!("sampling: {e}"))?;
    let (vocab, context) = (model.config.vocab_size, model.config.max_position_embeddings);
    let which = |r: usize| {
        if prompts.len() == 1 {
            "the prompt".to_string()
        } else {
            format!("prompt {} of {}", r + 1, prompts.len())
        }
    };
    for (r, p) in prompts.iter().enumerate() {
        if let Some(id) = p.iter().find(|&&id| id as usize >= vocab) {
            bail!("{} holds token id {id}, outside the model's vocabulary of {vocab}: encode prompts with the model's own tokenizer", which(r));
        }
        if room_left(context, p.len()) == 0 {
            bail!(
                "{} is {} tokens, which leaves no room for an answer in the model's context of {context} tokens (max_position_embeddings): shorten it",
                which(r),
                p.len()
            );
        }
    }
    let device = model.embed_tokens.device();
    let b = prompts.len() as i64;
    let lens: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
    let longest = *lens.iter().max().expect("non-empty");
    let padded = lens.iter().any(|&l| l != longest);
    // Each row stops at the end of the context; the batch runs until its shortest prompt's row
    // could, and the cache holds the longest prompt plus that many steps (under 2 x context).
    let limits: Vec<usize> = prompts.iter().map(|p| sampling.max_new_tokens.min(room_left(context, p.len()))).collect();
    let steps = *limits.iter().max().expect("non-empty");
    let capacity = longest + steps as i64;
    // Left padding: row r's tokens sit at the end of the first `longest` slots.
    let mut flat = Vec::with_capacity((b * longest) as usize);
    let mut valid = vec![false; (b * capacity) as usize];
    let mut positions = Vec::with_capacity((b * longest) as usize);
    for (r, p) in prompts.iter().enumerate() {
        let pad = (longest - lens[r]) as usize;
        for k in 0..longest as usize {
            let real = k >= pad;
            flat.push(if real { i64::from(p[k - pad]) } else { 0 });
            positions.push(if real { (k - pad) as i64 } else { 0 });
            valid[r * capacity as usize + k] = real;
        }
    }
    let ids = Tensor::from_slice(&flat).view([b, longest]).to_device(device);
    let pos = Tensor::from_slice(&positions).view([b, longest]).to_device(device);
    let valid_t = Tensor::from_slice(&valid).view([b, capacity]).to_device(device);
    let prefill_mask = if padded {
        let causal = Tensor::ones([longest, longest], (Kind::Bool, device)).tril(0);
        let keys = valid_t.narrow(1, 0, longest).view([b, 1, 1, longest]);
        // A padded query attends to itself only, so no row of the softmax is empty.
        let diag = Tensor::eye(longest, (Kind::Bool, device)).view([1, 1, longest, longest]);
        Mask::Explicit(causal.view([1, 1, longest, longest]).logical_and(&keys).logical_or(&diag))
    } else {
        Mask::Causal
    };
    let mut cache = KvCache::new(model, b, capacity);
    let mut rng = SplitMix64::new(sampling.seed);
    let mut seen: Vec<Vec<u32>> = prompts.to_vec();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut done = vec![false; prompts.len()];
    let _guard = tch::no_grad_guard();
    let hidden = model.hidden(&ids, &pos, &prefill_mask, Some(&mut cache));
    let mut logits = model.lm_head(&hidden.narrow(1, longest - 1, 1)).squeeze_dim(1);
    // Plain greedy decoding takes the argmax where the logits are: one id per row crosses to the
    // host instead of a row of vocabulary size (same first-maximum rule as `argmax` below).
    let greedy = sampling.temperature <= 0.0 && sampling.repetition_penalty == 1.0;
    for step in 0..steps as i64 {
        // Greedy: `[batch]` chosen ids; otherwise `[batch, vocab]` fp32 logits.
        let host =
            if greedy { logits.argmax(-1, false) } else { logits.to_kind(Kind::Float) }.to_device(tch::Device::Cpu);
        let mut next = Vec::with_capacity(prompts.len());
        for r in 0..prompts.len() {
            if done[r] {
                next.push(0i64);
                continue;
            }
            let id = if greedy {
                host.int64_value(&[r as i64]) as u32
            } else {
                choose(Vec::<f32>::try_from(host.get(r as i64))?, &seen[r], sampling, &mut rng)
            };
            seen[r].push(id);
            if stops.eos_ids.contains(&id) {
                done[r] = true;
            } else {
                out[r].push(id);
                let go_on = on_token(r, id);
                if !stops.strings.is_empty() {
                    let text = decode(&out[r])?;
                    if let Some(cut) = stops.strings.iter().filter_map(|s| text.find(s.as_str())).min() {
                        out[r] = truncate_to_text(&out[r], cut, decode)?;
                        done[r] = true;
                    }
                }
                if !go_on || step as usize + 1 >= limits[r] {
                    done[r] = true;
                }
            }
            next.push(i64::from(id));
        }
        if done.iter().all(|&d| d) || step as usize + 1 == steps {
            break;
        }
        let ids = Tensor::from_slice(&next).view([b, 1]).to_device(device);
        // A row still running feeds position len + step <= context - 2; finished rows (whose
        // output is ignored) are held inside the context too, so no position ever passes it.
        let last = context as i64 - 1;
        let pos = Tensor::from_slice(&lens.iter().map(|&l| (l + step).min(last)).collect::<Vec<_>>())
            .view([b, 1])
            .to_device(device);
        let mask = if padded {
            // The new token's slot becomes a valid key for every row.
            let _ = valid_t.narrow(1, cache.len, 1).fill_(1);
            Mask::Explicit(valid_t.narrow(1, 0, cache.len + 1).view([b, 1, 1, cache.len + 1]))
        } else {
            Mask::All
        };
        let hidden = model.hidden(&ids, &pos, &mask, Some(&mut cache));
        logits = model.lm_head(&hidden).squeeze_dim(1);
    }
    Ok(out)
}

/// The longest prefix of `ids` whose decoded text is at most `cut` bytes long: the tokens that
/// end before the stop string found at byte `cut`.
fn truncate_to_text(ids: &[u32], cut: usize, decode: &dyn Fn(&[u32]) -> Result<String>) -> Result<Vec<u32>> {
    let mut n = ids.len();
    while n > 0 && decode(&ids[..n])?.len() > cut {
        n -= 1;
    }
    Ok(ids[..n].to_vec())
}

/// Picks the next token from one row of logits.
fn choose(mut logits: Vec<f32>, seen: &[u32], s: &Sampling, rng: &mut SplitMix64) -> u32 {
    if s.repetition_penalty != 1.0 {
        let p = s.repetition_penalty as f32;
        let mut unique = seen.to_vec();
        unique.sort_unstable();
        unique.dedup();
        for id in unique {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l < 0.0 { *l * p } else { *l / p };
            }
        }
    }
    if s.temperature <= 0.0 {
        return argmax(&logits);
    }
    let t = s.temperature as f32;
    logits.iter_mut().for_each(|l| *l /= t);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let max = logits[order[0]];
    let mut probs: Vec<f64> = order.iter().map(|&i| f64::from(logits[i] - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut cumulative = 0.0;
        let keep = probs.iter().position(|&p| {
            cumulative += p;
            cumulative >= s.top_p
        });
        let keep = keep.map_or(probs.len(), |k| k + 1);
        probs.truncate(keep);
        order.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut acc = 0.0;
    for (k, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return order[k] as u32;
        }
    }
    order[probs.len() - 1] as u32
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
