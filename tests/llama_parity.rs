//! The model against `transformers` 5.23 (`LlamaForCausalLM`, fp32, CPU): for tiny random
//! checkpoints in both config key styles, with grouped-query attention, tied embeddings, explicit
//! head_dim, linear and llama3 rope scaling, and a sharded checkpoint, logits agree within 1e-4,
//! rotary frequencies agree, and 32 greedy tokens are identical, unbatched and left-padded batched;
//! both as trained (ATen products, separate projections) and as generation runs it
//! (`prepare_for_inference`: stacked projections, oneDNN products).
mod common;
use common::*;
use tch::{Device, Kind, Tensor};
use vicuna::infer::generate::{generate, Sampling, Stops};
use vicuna::model::llama::inv_freq;
use vicuna::model::weights::{load_model, Loaded};

const CONFIGS: [&str; 7] = ["classic_mha", "tf5_gqa", "tied", "llama3_rope", "linear_rope", "head_dim", "sharded"];

fn reference(name: &str) -> serde_json::Value {
    let path = llama_fixtures().join(name).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The checkpoint as trained and as generation prepares it.
fn both_ways(name: &str) -> [(&'static str, Loaded); 2] {
    both_ways_in(name, Kind::Float)
}

fn both_ways_in(name: &str, kind: Kind) -> [(&'static str, Loaded); 2] {
    let dir = llama_fixtures().join(name);
    let mut inference = load_model(&dir, kind, Device::Cpu).unwrap();
    inference.model.prepare_for_inference();
    [("training", load_model(&dir, kind, Device::Cpu).unwrap()), ("inference", inference)]
}

fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn logits_match_transformers_within_1e_4() {
    for name in CONFIGS {
        let r = reference(name);
        let input = ids(&r["input_ids"]);
        let flat: Vec<i64> = input.iter().flatten().map(|&x| i64::from(x)).collect();
        let t = Tensor::from_slice(&flat).view([input.len() as i64, input[0].len() as i64]);
        let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(r["logits"].clone()).unwrap();
        for (way, model) in both_ways(name) {
            let logits = tch::no_grad(|| model.forward(&t));
            let want = Tensor::from_slice(&want.concat().concat()).view(logits.size().as_slice());
            let diff = (&logits - &want).abs().max().double_value(&[]);
            assert!(
                diff < 1e-4,
                "{name} ({way}): max |logit difference| {diff:e} (max |logit| {})",
                r["max_abs_logit"]
            );
        }
    }
}

#[test]
fn rotary_frequencies_match_transformers() {
    for name in CONFIGS {
        let r = reference(name);
        let model = load_model(&llama_fixtures().join(name), Kind::Float, Device::Cpu).unwrap();
        let want: Vec<f32> = serde_json::from_value(r["rope_inv_freq"].clone()).unwrap();
        let got = Vec::<f32>::try_from(inv_freq(&model.config, 24, Device::Cpu)).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-6), "{name}: inv_freq {got:?} != {want:?}");
        }
        assert_eq!(got.len(), want.len());
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    let sampling = Sampling { max_new_tokens: 32, ..Sampling::default() };
    let decode = |_: &[u32]| -> anyhow::Result<String> { Ok(String::new()) };
    for name in CONFIGS {
        let r = reference(name);
        let prompt: Vec<u32> = serde_json::from_value(r["greedy_prompt"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(r["greedy"].clone()).unwrap();
        let prompts = ids(&r["greedy_batch_prompts"]);
        let want_batch = ids(&r["greedy_batch"]);
        for (way, model) in both_ways(name) {
            let got = generate(&model, &[prompt.clone()], &sampling, &Stops::default(), &decode, &mut |_, _| true);
            assert_eq!(got.unwrap()[0], want, "{name} ({way}): greedy tokens");
            let got = generate(&model, &prompts, &sampling, &Stops::default(), &decode, &mut |_, _| true).unwrap();
            assert_eq!(got, want_batch, "{name} ({way}): left-padded batched greedy tokens");
        }
    }
}

/// bf16 generation against transformers in bf16 (`from_pretrained(dtype=bfloat16)`): the greedy
/// tokens agree for 32 steps, or up to a step where transformers' own top two logits are within
/// two bf16 spacings of each other (a tie at bf16's resolution, where either kernel's rounding
/// may pick either token), and never before step 16 (each such step is printed).
#[test]
fn bf16_greedy_continuations_match_transformers_in_bf16() {
    let sampling = Sampling { max_new_tokens: 32, ..Sampling::default() };
    let decode = |_: &[u32]| -> anyhow::Result<String> { Ok(String::new()) };
    for name in CONFIGS {
        let r = reference(name);
        let prompt: Vec<u32> = serde_json::from_value(r["greedy_prompt"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(r["greedy_bf16"].clone()).unwrap();
        let margins: Vec<f64> = serde_json::from_value(r["greedy_bf16_margins"].clone()).unwrap();
        let tops: Vec<f64> = serde_json::from_value(r["greedy_bf16_top_logits"].clone()).unwrap();
        for (way, model) in both_ways_in(name, Kind::BFloat16) {
            let got = generate(&model, &[prompt.clone()], &sampling, &Stops::default(), &decode, &mut |_, _| true);
            let got = got.unwrap().remove(0);
            let Some(k) = got.iter().zip(&want).position(|(a, b)| a != b) else { continue };
            // bf16 keeps 8 significant bits: values in [2^e, 2^(e+1)) are 2^(e-7) apart.
            let spacing = 2f64.powi(tops[k].abs().log2().floor() as i32 - 7);
            eprintln!(
                "{name} ({way}): bf16 greedy diverges at step {k}: transformers' margin {:.4} at top logit {:.3} ({:.1} bf16 spacings)",
                margins[k],
                tops[k],
                margins[k] / spacing
            );
            assert!(k >= 16, "{name} ({way}): bf16 greedy tokens differ at step {k}: {got:?} vs {want:?}");
            assert!(
                margins[k] <= 2.0 * spacing,
                "{name} ({way}): bf16 greedy tokens differ at step {k} with a margin of {} ({} spacings)",
                margins[k],
                margins[k] / spacing
            );
        }
    }
}
