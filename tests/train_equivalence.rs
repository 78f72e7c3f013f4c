//! Equivalences the trainer must keep: accumulation (micro-batch 4 x 1 equals micro-batch 1 x 4),
//! gradient checkpointing (same gradients), packing (same loss on the same samples).
mod common;
use common::*;
use tch::{Device, Kind, Tensor};
use vicuna::data::loader::{load_samples, trained_targets};
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
use vicuna::model::weights::load_model;
use vicuna::train::batch::{packed_batch, padded_batch};
use vicuna::train::step::micro_step;

#[test]
fn micro_batch_4_by_1_equals_micro_batch_1_by_4() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let run = |name: &str, micro: &str, accumulation: &str| {
        let out = s.path(name);
        let args = train_args(
            &model,
            &out,
            &["--max-steps", "3", "--micro-batch-size", micro, "--gradient-accumulation", accumulation],
        );
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        tensors(&out.join("final/model.safetensors"))
    };
    let (a, b) = (run("a", "4", "1"), run("b", "1", "4"));
    let start = tensors(&model.join("model.safetensors"));
    assert!(max_diff(&a, &start) > 1e-3, "the weights moved");
    let diff = max_diff(&a, &b);
    assert!(diff < 1e-5, "weights differ by {diff:e}");
}

fn setup() -> (Scratch, vicuna::model::weights::Loaded, Vec<vicuna::data::encode::Sample>) {
    let s = Scratch::new();
    let dir = tiny_model(&s);
    let tokenizer = Tokenizer::load(&dir, &SpecialOverrides::default()).unwrap();
    let template = Template::new(TemplateName::Chatml, &tokenizer).unwrap();
    let (samples, _) = load_samples(&train_data(), &tokenizer, &template, 2048, usize::MAX).unwrap();
    let model = load_model(&dir, Kind::Float, Device::Cpu).unwrap();
    for (_, p) in model.named_parameters() {
        let _ = p.shallow_clone().set_requires_grad(true);
    }
    (s, model, samples)
}

fn grads(model: &vicuna::model::llama::Llama) -> Vec<Tensor> {
    model
        .named_parameters()
        .into_iter()
        .map(|(_, p)| {
            let g = p.grad().copy();
            p.shallow_clone().zero_grad();
            g
        })
        .collect()
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients() {
    let (_s, model, samples) = setup();
    let refs: Vec<_> = samples.iter().take(4).collect();
    let n: usize = refs.iter().map(|s| trained_targets(s)).sum();
    let batch = padded_batch(&refs, 0, Device::Cpu);
    let plain_loss = micro_step(&model, &batch, 1.0 / n as f64, false);
    let plain = grads(&model);
    let ckpt_loss = micro_step(&model, &batch, 1.0 / n as f64, true);
    let ckpt = grads(&model);
    assert_eq!(plain_loss, ckpt_loss);
    let largest = plain.iter().map(|g| g.abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(largest > 1e-3, "gradients are not trivially zero ({largest:e})");
    let diff = plain.iter().zip(&ckpt).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(diff < 1e-6, "gradients differ by {diff:e}");
}

#[test]
fn packing_gives_the_same_loss_on_the_same_samples() {
    let (_s, model, samples) = setup();
    let refs: Vec<_> = samples.iter().collect();
    let n: usize = refs.iter().map(|s| trained_targets(s)).sum();
    let padded = padded_batch(&refs, 0, Device::Cpu);
    let packed = packed_batch(&refs, 2048, 0, Device::Cpu);
    assert!(packed.ids.size()[0] < padded.ids.size()[0], "packing puts several samples in a row");
    let a = micro_step(&model, &padded, 1.0 / n as f64, false) / n as f64;
    let _ = grads(&model);
    let b = micro_step(&model, &packed, 1.0 / n as f64, true) / n as f64;
    assert!((a - b).abs() < 1e-5, "loss {a} padded vs {b} packed");
}
