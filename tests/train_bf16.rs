//! bf16 mixed precision on CPU (the GPU's numerics in every CI run): bf16 weights and activations,
//! fp32 masters, AdamW moments, gradient sums and loss. Three steps agree with a PyTorch reference
//! that follows the same policy (`scripts/fixtures/train_reference.py`, plan dtype "bfloat16").
mod common;
use common::*;
use std::path::Path;
use tch::{Device, Kind, Tensor};
use vicuna::data::encode::Sample;
use vicuna::data::loader::{load_samples, trained_targets};
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::Tokenizer;
use vicuna::model::weights::open_model;
use vicuna::train::batch::padded_batch;
use vicuna::train::dist::sharded::Sharded;
use vicuna::train::dist::ShardMode;
use vicuna::train::step::micro_step_with;

/// A 3-step bf16 run of the tiny model: micro-batches of `micro`, `accumulation` of them a step.
fn bf16_run(
    s: &Scratch,
    model: &std::path::Path,
    name: &str,
    micro: &str,
    accumulation: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let out = s.path(name);
    let mut flags = vec![
        "--dtype",
        "bf16",
        "--max-steps",
        "3",
        "--micro-batch-size",
        micro,
        "--gradient-accumulation",
        accumulation,
        "--lr-schedule",
        "constant",
        "--max-grad-norm",
        "1.0",
    ];
    flags.extend_from_slice(extra);
    let args = train_args(model, &out, &flags);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out
}

/// Adam's step bound: with bias correction, |m_hat / sqrt(v_hat)| <= sqrt(sum_i a_i^2 / b_i) where
/// a_i, b_i are the weights of gradient i in m_hat and v_hat (Cauchy-Schwarz); 1 at step 1,
/// 1.0013 at step 2, 1.0037 at step 3 for betas (0.9, 0.999). Whatever the gradients, one update
/// moves a weight by at most lr times that.
fn adam_step_bound(step: usize, b1: f64, b2: f64) -> f64 {
    let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
    (1..=step)
        .map(|i| {
            let a = (1.0 - b1) * b1.powi((step - i) as i32) / c1;
            let b = (1.0 - b2) * b2.powi((step - i) as i32) / c2;
            a * a / b
        })
        .sum::<f64>()
        .sqrt()
}

/// Parity with PyTorch under the same policy. Tolerances, as derived:
/// - losses within 1e-3 and gradient norms within 1e-3 relative: both sides round the same
///   products to bf16 (unit roundoff 2^-8), kernels differ in their summation order only, and
///   the loss sums thousands of fp32 terms, so their differences average out far below 2^-8;
/// - every fp32 master within 2 lr sum_t bound_t (two Adam runs can differ by at most the sum of
///   both runs' largest steps: [`adam_step_bound`]), whatever bf16 rounding did to the gradients;
/// - and the update itself (final - initial weights) agrees to 10% in norm: bf16 rounding
///   perturbs each gradient by about 2^-8 relative, which Adam turns into sign changes only where
///   a gradient is near zero.
#[test]
fn three_bf16_steps_match_pytorch_following_the_same_policy() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = bf16_run(&s, &model, "run", "2", "2", &[]);
    let steps = step_metrics(&out);
    assert_eq!(steps.len(), 3);
    let (result, reference, _, _) = replay_with_reference(&s, &model, &steps, 2, "bfloat16");
    assert_eq!(result["dtype"], "bfloat16");
    for (k, m) in steps.iter().enumerate() {
        let (ours, theirs) = (m["loss"].as_f64().unwrap(), result["losses"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-3, "step {k}: loss {ours} vs {theirs}");
        let (ours, theirs) = (m["grad_norm"].as_f64().unwrap(), result["grad_norms"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-3 * theirs, "step {k}: grad norm {ours} vs {theirs}");
    }
    let lr = 1e-3;
    let bound = 2.0 * lr * (1..=3).map(|t| adam_step_bound(t, 0.9, 0.999)).sum::<f64>();
    let initial = tensors(&model.join("model.safetensors"));
    let ours = tensors(&out.join("final/model.safetensors"));
    let theirs = tensors(&reference.join("model.safetensors"));
    for (name, t) in &ours {
        assert_eq!(t.kind(), Kind::Float, "{name}: the export keeps the source's fp32");
        let d = (t - &theirs[name]).abs().max().double_value(&[]);
        assert!(d <= bound, "{name}: masters differ by {d:e}, more than Adam allows ({bound:e})");
    }
    let disagreement = update_disagreement(&initial, &ours, &theirs);
    eprintln!("3 bf16 steps: the updates disagree by {:.2}% in norm; masters within {bound:e}", 100.0 * disagreement);
    assert!(disagreement <= 0.1, "the updates disagree by {:.1}% in norm", 100.0 * disagreement);
}

/// The fp32 gradient sum of `samples` in micro-batches of `micro`, each scaled by 1 / `trained`,
/// as the trainer accumulates it (through `Sharded`, one process), for the model in `kind`.
fn step_gradient(dir: &Path, kind: Kind, samples: &[&Sample], micro: usize, trained: usize, pad_id: u32) -> Tensor {
    let (model, weights) = open_model(dir, kind, Device::Cpu).unwrap();
    let named: Vec<(String, Tensor)> =
        model.named_parameters().into_iter().map(|(n, t)| (n, t.shallow_clone())).collect();
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let read = |p: usize, start: i64, len: i64| weights.read_flat(&names[p], start, len, Kind::Float, Device::Cpu);
    let mut shard = Sharded::new(named, &read, ShardMode::None, false, None).unwrap();
    let slots = samples.len().div_ceil(micro);
    for (i, chunk) in samples.chunks(micro).enumerate() {
        shard.reduce_now = i + 1 == slots;
        let batch = padded_batch(chunk, pad_id, Device::Cpu);
        micro_step_with(&model, Some(&batch), 1.0 / trained as f64, true, &mut shard).unwrap();
        shard.finish_reductions().unwrap();
    }
    shard.grad.copy()
}

/// Gradient accumulation over 32 micro-batches in bf16 training is fp32 summation of their bf16
/// gradients: the trainer's sum differs from the exact (f64) sum of the 32 gradients, each
/// computed alone, by no more than recursive fp32 summation allows, (n - 1) 2^-24 sum |g_i|
/// elementwise. Summing in bf16 (the parameters' own `.grad`) misses it by orders of magnitude.
#[test]
fn bf16_gradients_accumulate_in_fp32_over_micro_batches() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let tokenizer = Tokenizer::load(&model, &Default::default()).unwrap();
    let template = Template::new(TemplateName::Chatml, &tokenizer).unwrap();
    let (loaded, _) = load_samples(&train_data(), &tokenizer, &template, 2048, usize::MAX).unwrap();
    let samples: Vec<&Sample> = loaded.iter().cycle().take(32).collect();
    let pad = tokenizer.pad.as_ref().map_or(0, |p| p.id);
    let trained: usize = samples.iter().map(|s| trained_targets(s)).sum();
    let summed = step_gradient(&model, Kind::BFloat16, &samples, 1, trained, pad);
    let alone: Vec<Tensor> = samples
        .iter()
        .map(|s| step_gradient(&model, Kind::BFloat16, &[*s], 1, trained, pad).to_kind(Kind::Double))
        .collect();
    let exact = Tensor::stack(&alone, 0).sum_dim_intlist(0, false, Kind::Double);
    let magnitude = Tensor::stack(&alone, 0).abs().sum_dim_intlist(0, false, Kind::Double);
    let allowed = magnitude * (31.0 * 2f64.powi(-24)) + 1e-30;
    let excess = ((summed.to_kind(Kind::Double) - &exact).abs() / &allowed).max().double_value(&[]);
    assert!(
        excess <= 1.0,
        "the accumulated gradient is {excess:.1}x further from the exact sum than fp32 summation allows"
    );
}

/// The same 3 bf16 steps with micro-batches 4 x 1 and 1 x 4: the same losses within 1e-3
/// relative (a padded batch of 4 and 4 single rows round their bf16 logits differently, 2^-8
/// relative each, which the mean over a step's tokens shrinks but does not remove) and updates
/// within the parity test's tolerance; and with gradient checkpointing on and off,
/// bit-identical weights (the recomputation runs the same kernels on the same inputs).
#[test]
fn bf16_micro_batches_and_checkpointing_do_not_change_the_result() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let four = bf16_run(&s, &model, "four", "1", "4", &[]);
    let one = bf16_run(&s, &model, "one", "4", "1", &[]);
    let plain = bf16_run(&s, &model, "plain", "4", "1", &["--gradient-checkpointing", "false"]);
    for (a, b) in step_metrics(&four).iter().zip(step_metrics(&one)) {
        let (x, y) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-3 * y, "step {}: loss {x} (4 x 1) vs {y} (1 x 4)", a["step"]);
    }
    let initial = tensors(&model.join("model.safetensors"));
    let w = |o: &Path| tensors(&o.join("final/model.safetensors"));
    let disagreement = update_disagreement(&initial, &w(&four), &w(&one));
    eprintln!("4 x 1 vs 1 x 4: the updates disagree by {:.2}% in norm", 100.0 * disagreement);
    assert!(disagreement <= 0.1, "4 x 1 vs 1 x 4: the updates disagree by {:.1}%", 100.0 * disagreement);
    let same = std::fs::read(one.join("final/model.safetensors")).unwrap()
        == std::fs::read(plain.join("final/model.safetensors")).unwrap();
    assert!(same, "gradient checkpointing on and off must give bit-identical bf16 training");
}

/// `--dtype auto` picks bf16 exactly on CPUs with AMX, and says so with the reason, in training
/// and in generation (the other commands share generation's flag).
#[test]
fn auto_is_bf16_exactly_on_amx_cpus_and_says_why() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let amx = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "amx_bf16"));
    let expected = match amx {
        true => "dtype bf16: auto: the CPU (",
        false => "dtype fp32: auto: the CPU (",
    };
    let reason = if amx { ") has AMX with bf16" } else { ") has no AMX, where bf16 matmuls are slower than fp32" };
    let out = s.path("auto");
    let args = train_args(&model, &out, &["--max-steps", "1", "--dtype", "auto"]);
    let generate = [
        "generate".to_string(),
        "--model".into(),
        model.to_str().unwrap().into(),
        "--prompt".into(),
        "hi".into(),
        "--max-new-tokens".into(),
        "2".into(),
    ];
    for args in [args, generate.to_vec()] {
        let run = vicuna_command().env_remove("VICUNA_DTYPE").args(&args).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let stderr = String::from_utf8_lossy(&run.stderr);
        let line =
            stderr.lines().find(|l| l.starts_with("dtype ")).unwrap_or_else(|| panic!("no dtype line: {stderr}"));
        assert!(line.starts_with(expected) && line.contains(reason), "{}: {line}", args[0]);
    }
}

/// The export is the fp32 masters written in `--export-dtype` (bf16 here: the masters rounded to
/// nearest even, bit for bit), and by default in the source checkpoint's format (a bf16 source
/// trained in fp32 exports bf16).
#[test]
fn the_export_writes_the_masters_in_the_dtype_asked_for() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let fp32 = bf16_run(&s, &model, "fp32-export", "2", "1", &[]);
    let bf16 = bf16_run(&s, &model, "bf16-export", "2", "1", &["--export-dtype", "bf16"]);
    let (masters, rounded) =
        (tensors(&fp32.join("final/model.safetensors")), tensors(&bf16.join("final/model.safetensors")));
    for (name, t) in &rounded {
        assert_eq!(t.kind(), Kind::BFloat16, "{name}");
        assert!(t.equal(&masters[name].to_kind(Kind::BFloat16)), "{name}: not the masters rounded");
    }
    // the fp32 export holds the masters themselves, not the bf16 weights widened back to fp32
    let widened = masters.values().all(|t| t.equal(&t.to_kind(Kind::BFloat16).to_kind(Kind::Float)));
    assert!(!widened, "the fp32 export holds only bf16 values: the model's weights, not the masters");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bf16.join("final/config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");

    let source = tiny_model_with_flags(&s, "bf16-source", 1, &["--dtype", "bf16"]);
    let out = s.path("from-bf16-source");
    ok(&train_args(&source, &out, &["--max-steps", "1", "--dtype", "fp32"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    for (name, t) in tensors(&out.join("final/model.safetensors")) {
        assert_eq!(t.kind(), Kind::BFloat16, "{name}: the source's format by default");
    }
}
