//! Checkpoints written by `vicuna` load in `transformers` unchanged (sharded, with the index,
//! config and generation config) and give the same logits; they load back in `vicuna`
//! bit-identically; and loading maps the file instead of reading it.
mod common;
use common::*;
use std::process::Command;
use tch::{Device, Kind, Tensor};
use vicuna::model::weights::{load_model, save_model};

fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("VIRTUAL_ENV").map(std::path::PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    venv.join("bin/python")
}

fn logits_of(model: &vicuna::model::llama::Llama, ids: &[Vec<u32>]) -> Tensor {
    let flat: Vec<i64> = ids.iter().flatten().map(|&x| i64::from(x)).collect();
    tch::no_grad(|| model.forward(&Tensor::from_slice(&flat).view([ids.len() as i64, ids[0].len() as i64])))
}

#[test]
fn saved_sharded_checkpoint_loads_in_transformers_with_identical_logits() {
    for name in ["tf5_gqa", "tied", "llama3_rope"] {
        let source = llama_fixtures().join(name);
        let model = load_model(&source, Kind::Float, Device::Cpu).unwrap();
        let s = Scratch::new();
        let out = s.path("saved");
        save_model(&model, &out, Kind::Float, 40_000, None).unwrap();
        assert!(out.join("model.safetensors.index.json").exists(), "{name}: small shards force an index");
        let ids: Vec<Vec<u32>> =
            vec![(0..20).map(|i| (i * 7 + 3) % 250).collect(), (0..20).map(|i| (i * 13 + 1) % 250).collect()];
        let ids_path = s.write("ids.json", &serde_json::to_string(&ids).unwrap());
        let logits_path = s.path("logits.json");
        let run = Command::new(python())
            .arg(repo().join("scripts/fixtures/llama_reference.py"))
            .args(["logits", out.to_str().unwrap(), ids_path.to_str().unwrap(), logits_path.to_str().unwrap()])
            .output()
            .expect("run the transformers reference (make test installs it)");
        assert!(
            run.status.success(),
            "{name}: transformers refused the checkpoint:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let theirs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&logits_path).unwrap()).unwrap();
        let theirs: Vec<Vec<Vec<f32>>> = serde_json::from_value(theirs["logits"].clone()).unwrap();
        let ours = logits_of(&model, &ids);
        let theirs = Tensor::from_slice(&theirs.concat().concat()).view(ours.size().as_slice());
        let diff = (&ours - &theirs).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{name}: transformers' logits of our checkpoint differ by {diff:e}");
        let reloaded = load_model(&out, Kind::Float, Device::Cpu).unwrap();
        assert!(logits_of(&reloaded, &ids).equal(&ours), "{name}: a reloaded checkpoint is bit-identical");
    }
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let s = Scratch::new();
    let source = llama_fixtures().join("classic_mha");
    let dir = s.path("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap()).unwrap();
    config["num_hidden_layers"] = (config["num_hidden_layers"].as_u64().unwrap() + 1).into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let err = load_model(&dir, Kind::Float, Device::Cpu).err().unwrap().to_string();
    let layer = config["num_hidden_layers"].as_u64().unwrap() - 1;
    assert_eq!(
        err,
        format!("{}: tensor model.layers.{layer}.input_layernorm.weight is missing from the checkpoint", dir.display())
    );
    config["num_hidden_layers"] = (layer).into();
    config["intermediate_size"] = 100.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let err = load_model(&dir, Kind::Float, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.starts_with(&format!("{}: tensor model.layers.0.mlp.gate_proj.weight has shape [", dir.display())),
        "{err}"
    );
    assert!(err.ends_with("the config expects [100, 64]"), "{err}");
}

/// Regression: `model init --tokenizer FILE.json` (a file not named tokenizer.json) left the new
/// model directory without a tokenizer, so `generate` and `train` could not use it.
#[test]
fn model_init_copies_a_tokenizer_given_as_a_file() {
    let s = Scratch::new();
    let file = s.path("my-tokenizer.json");
    std::fs::copy(tiny_tokenizer().join("tokenizer.json"), &file).unwrap();
    let model = s.path("model");
    ok(&["model", "init", "--preset", "tiny", "--tokenizer", file.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    assert_eq!(std::fs::read(model.join("tokenizer.json")).unwrap(), std::fs::read(&file).unwrap());
    ok(&["generate", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--max-new-tokens", "2"]);
}
