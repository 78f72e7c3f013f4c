//! Parity with PyTorch: three optimizer steps of `vicuna train` give the same weights (within
//! 1e-4), losses and gradient norms as the same steps in `transformers` + `torch.optim.AdamW`
//! with the same batches and masks (`scripts/fixtures/train_reference.sh` replays our steps), and
//! the gradient of every parameter after the first step's micro-batches matches PyTorch's, with
//! and without gradient checkpointing.
mod common;
use common::*;

#[test]
fn three_steps_match_transformers_and_torch_adamw() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let out = s.path("run");
    let args = train_args(
        &model,
        &out,
        &[
            "--max-steps",
            "3",
            "--micro-batch-size",
            "2",
            "--gradient-accumulation",
            "2",
            "--lr-schedule",
            "constant",
            "--max-grad-norm",
            "1.0",
        ],
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let steps = step_metrics(&out);
    assert_eq!(steps.len(), 3);
    let (result, reference, encoded, plan_steps) = replay_with_reference(&s, &model, &steps, 2, "float32");
    for (k, m) in steps.iter().enumerate() {
        let (ours, theirs) = (m["loss"].as_f64().unwrap(), result["losses"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-5 * theirs.abs(), "step {k}: loss {ours} vs {theirs}");
        let (ours, theirs) = (m["grad_norm"].as_f64().unwrap(), result["grad_norms"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-4 * theirs.abs(), "step {k}: grad norm {ours} vs {theirs}");
        assert_eq!(m["trained_tokens"], result["trained_tokens"][k], "step {k}: trained tokens");
    }
    let diff = max_diff(&tensors(&out.join("final/model.safetensors")), &tensors(&reference.join("model.safetensors")));
    assert!(diff < 1e-4, "weights differ by {diff:e} after 3 steps");

    // Every parameter's gradient after step 1 (before clipping), from the trainer's own micro-step.
    let theirs = tensors(&reference.join("grads_step1.safetensors"));
    let tokenizer = vicuna::data::tokenizer::Tokenizer::load(&model, &Default::default()).unwrap();
    let pad_id = tokenizer.pad.as_ref().map_or(0, |p| p.id);
    let template =
        vicuna::data::template::Template::new(vicuna::data::template::TemplateName::Chatml, &tokenizer).unwrap();
    let (loaded, _) = vicuna::data::loader::load_samples(&encoded, &tokenizer, &template, 2048, usize::MAX).unwrap();
    let step1: Vec<&vicuna::data::encode::Sample> = plan_steps[0].iter().flatten().map(|&i| &loaded[i]).collect();
    let trained: usize = step1.iter().map(|s| vicuna::data::loader::trained_targets(s)).sum();
    for checkpointing in [true, false] {
        let ours = vicuna::model::weights::load_model(&model, tch::Kind::Float, tch::Device::Cpu).unwrap();
        for (_, p) in ours.named_parameters() {
            let _ = p.shallow_clone().set_requires_grad(true);
        }
        for micro in step1.chunks(2) {
            let batch = vicuna::train::batch::padded_batch(micro, pad_id, tch::Device::Cpu);
            vicuna::train::step::micro_step(&ours, &batch, 1.0 / trained as f64, checkpointing);
        }
        let grads: std::collections::BTreeMap<String, tch::Tensor> =
            ours.named_parameters().into_iter().map(|(n, p)| (n, p.grad())).collect();
        assert_eq!(grads.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the same parameters");
        for (name, g) in &grads {
            let scale = theirs[name].abs().max().double_value(&[]).max(1e-8);
            let diff = (g - &theirs[name]).abs().max().double_value(&[]);
            assert!(
                diff <= 1e-4 * scale,
                "checkpointing {checkpointing}: gradient of {name} differs by {diff:e} (max |g| {scale:e})"
            );
        }
    }
}
