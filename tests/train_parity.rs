//! Parity with PyTorch: three optimizer steps of `vicuna train` give the same weights (within
//! 1e-4), losses and gradient norms as the same steps in `transformers` + `torch.optim.AdamW`
//! with the same batches and masks (`scripts/fixtures/train_reference.sh` replays our steps).
mod common;
use common::*;
use std::process::Command;

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
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 3);

    // The same samples, encoded the same way, in the order our trainer used them.
    let encoded = s.path("samples.jsonl");
    let tok = model.to_str().unwrap();
    ok(&[
        "prep",
        "encode",
        train_data().to_str().unwrap(),
        "-o",
        encoded.to_str().unwrap(),
        "--tokenizer",
        tok,
        "--template",
        "chatml",
    ]);
    let samples = read_records(&encoded);
    let index = |id: &str| samples.iter().position(|s| s["id"] == id).unwrap();
    let plan_steps: Vec<Vec<Vec<usize>>> = steps
        .iter()
        .map(|m| {
            m["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| index(id.as_str().unwrap()))
                .collect::<Vec<_>>()
                .chunks(2)
                .map(<[usize]>::to_vec)
                .collect()
        })
        .collect();
    let plan = serde_json::json!({
        "samples": samples.iter().map(|s| serde_json::json!({"input_ids": s["input_ids"], "labels": s["labels"]})).collect::<Vec<_>>(),
        "steps": plan_steps,
        "lr": steps.iter().map(|m| m["lr"].clone()).collect::<Vec<_>>(),
        "betas": [0.9, 0.999], "eps": 1e-6, "weight_decay": 0.0, "max_grad_norm": 1.0, "pad_id": 2,
    });
    let plan_path = s.write("plan.json", &plan.to_string());
    let reference = s.path("reference");
    let run = Command::new("bash")
        .arg(repo().join("scripts/fixtures/train_reference.sh"))
        .args([model.to_str().unwrap(), plan_path.to_str().unwrap(), reference.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "reference failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference.join("result.json")).unwrap()).unwrap();
    for (k, m) in steps.iter().enumerate() {
        let (ours, theirs) = (m["loss"].as_f64().unwrap(), result["losses"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-5 * theirs.abs(), "step {k}: loss {ours} vs {theirs}");
        let (ours, theirs) = (m["grad_norm"].as_f64().unwrap(), result["grad_norms"][k].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-4 * theirs.abs(), "step {k}: grad norm {ours} vs {theirs}");
        assert_eq!(m["trained_tokens"], result["trained_tokens"][k], "step {k}: trained tokens");
    }
    let diff = max_diff(&tensors(&out.join("final/model.safetensors")), &tensors(&reference.join("model.safetensors")));
    assert!(diff < 1e-4, "weights differ by {diff:e} after 3 steps");
}
