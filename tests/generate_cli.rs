//! `vicuna model init`, `model inspect`, `generate` and `chat` end to end on a tiny model: prompt
//! ids are the template's rendering, sampling is reproducible by seed, batches give each prompt
//! its own answer, and chat carries the conversation across turns.
mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn generate(model: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["generate", "--model", model, "--template", "chatml", "--max-new-tokens", "12", "--json"];
    args.extend_from_slice(extra);
    ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn generate_renders_the_prompt_with_the_template_and_samples_reproducibly() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    let inspect: serde_json::Value = serde_json::from_str(&ok(&["model", "inspect", &model, "--json"])).unwrap();
    assert_eq!(inspect["config"]["num_hidden_layers"], 2);
    assert_eq!(inspect["tensors"].as_array().unwrap().len(), 2 * 9 + 3);

    let greedy = generate(&model, &["--prompt", "Hello there"]);
    let tokenizer =
        vicuna::data::tokenizer::Tokenizer::load(std::path::Path::new(&model), &Default::default()).unwrap();
    let want = tokenizer.encode("<s><|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n").unwrap().ids;
    let got: Vec<u32> = serde_json::from_value(greedy[0]["prompt_ids"].clone()).unwrap();
    assert_eq!(got, want, "the prompt is the chatml rendering up to the answer");
    assert!(greedy[0]["ids"].as_array().unwrap().len() <= 12);
    assert_eq!(generate(&model, &["--prompt", "Hello there"]), greedy, "greedy is deterministic");

    let sample = |seed: &str| {
        generate(&model, &["--prompt", "Hello there", "--temperature", "1.0", "--top-p", "0.95", "--seed", seed])
    };
    assert_eq!(sample("7"), sample("7"), "same seed, same sample");
    assert_ne!(sample("7")[0]["ids"], sample("8")[0]["ids"], "another seed, another sample");

    let batch =
        generate(&model, &["--prompt", "Hello there", "--prompt", "A longer prompt that needs left padding here"]);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["ids"], greedy[0]["ids"], "batching (with left padding) does not change an answer");
}

#[test]
fn chat_keeps_the_conversation_across_turns() {
    let s = Scratch::new();
    let model = tiny_model(&s).to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vicuna"))
        .args(["chat", "--model", &model, "--template", "chatml", "--max-new-tokens", "6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hi\nTell me more\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("ASSISTANT: ").count(), 2, "two answers: {text:?}");
    assert_eq!(text.matches("USER: ").count(), 3, "prompted three times (the empty line quits): {text:?}");
}
